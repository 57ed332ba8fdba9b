import Foundation
import ArgumentParser
import Glibc
import Netfilter
import Reconciler
import Ruleset

/// Options every kernel-touching command shares.
struct KernelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Talk to nftables inside this network namespace (as `ip netns add NAME` creates it) instead of the current one.",
        discussion: "The demo, the lab and the kernel tests always pass it, so they never touch the machine's own firewall.",
        valueName: "NAME"))
    var netns: String?

    func validate() throws {
        if netns?.isEmpty == true { throw ValidationError("--netns needs a name (as `ip netns add NAME` creates it) or a path") }
    }

    /// Opens the netlink socket in the chosen namespace (`NetlinkKernel(namespace:)`).
    func openKernel() throws(NetfilterError) -> NetlinkKernel {
        try NetlinkKernel(namespace: netns)
    }

    /// The state file of the daemon for this namespace and policy directory: `explicit` when
    /// given ("" for none), else `StateFile.defaultPath`.
    func stateFile(_ explicit: String?, policies: String) -> String? {
        if let explicit { return explicit.isEmpty ? nil : explicit }
        return StateFile.defaultPath(namespace: netns, policyDirectory: policies)
    }

    /// Takes the namespace's lock for this process (`NamespaceLock`), described as `holder`;
    /// exit 1 when another zonewall holds it. Keep the result alive while the table is changed.
    func lockNamespace(holder: String) throws -> NamespaceLock? {
        do {
            return try NamespaceLock.acquire(namespace: netns, holder: "\(holder) (pid \(getpid()))")
        } catch {
            printError("zonewall: \(error)")
            throw ExitCode(1)
        }
    }

    /// Where the commands act, for messages: `table inet zonewall in netns zw-1`.
    func place(_ table: String) -> String {
        netns.map { "\(table) in netns \($0)" } ?? table
    }

    /// The namespace itself, for messages: `netns X`, or this namespace.
    var namespacePlace: String { netns.map { "netns \($0)" } ?? "this namespace" }

    /// The command that confirms a pending change here, as a user would type it.
    /// The `zonewall confirm` command for a window opened with the policies in `policies`: it
    /// names the namespace, and the directory unless it is the default one.
    func confirmCommand(policies: String) -> String {
        let dir = StateFile.canonicalDirectory(policies)
        let named = dir == StateFile.canonicalDirectory(PolicyOptions.defaultDirectory) ? nil : dir
        return "zonewall confirm" + (netns.map { " --netns \($0)" } ?? "") + (named.map { " --policies \($0)" } ?? "")
    }

    /// Exit 1 when a change in this namespace waits for confirmation (of one of `owners`): its
    /// guard (or daemon) would put the rule set before it back at the deadline, undoing whatever
    /// is done now.
    func refuseWhileConfirmationPending(_ doing: String, owners: Set<PendingConfirmation.Owner> = [.apply, .daemon]) throws {
        guard let p = ConfirmationStore.pending(inNamespace: netns).first(where: { owners.contains($0.owner) }) else { return }
        printError("zonewall: cannot \(doing): a change to \(place(KernelSync.tableName)) is waiting for confirmation until "
                   + "\(ISO8601DateFormatter().string(from: p.deadline)) (\(p.owner == .apply ? "apply --confirm guard" : "zonewall run"), "
                   + "pid \(p.pid), policies \(p.policyDirectory)), and would be undone at that deadline; run `\(confirmCommand(policies: p.policyDirectory))` "
                   + "first, or let it revert")
        throw ExitCode(1)
    }
}

/// What to do about EPERM: nftables needs CAP_NET_ADMIN in the namespace it changes.
let privilegeHint = """
    note: nftables needs CAP_NET_ADMIN in the network namespace it works in; run as root, or, \
    to only validate (check --kernel), inside a new user and network namespace of your own: \
    unshare -rn zonewall check --kernel --policies DIR
    """

/// What EPERM means to root: the table carries NFT_TABLE_F_OWNER for another process's socket.
let ownedTableHint = """
    note: as root, nftables refuses a change only to a table another process owns (`zonewall run --own-table` \
    makes its table its own until it exits); stop that process, or change the policy it enforces
    """

/// What EPERM means to a process that lacks CAP_NET_ADMIN: root in a container started without
/// NET_ADMIN, or in a unit whose capability bounding set leaves it out.
let missingCapabilityHint = """
    note: this process does not hold CAP_NET_ADMIN, which nftables requires for every request, \
    even a read; root has it only if its capability set includes it (it does not in a container \
    started without NET_ADMIN, under a systemd unit whose CapabilityBoundingSet leaves it out, or \
    after `setpriv --bounding-set=-net_admin`); grant it (`docker run --cap-add NET_ADMIN`, \
    `CapabilityBoundingSet=CAP_NET_ADMIN`), or, to only validate, run `unshare -rn zonewall check --kernel`
    """

/// Whether this process holds CAP_NET_ADMIN in its effective set (`CapEff` in
/// /proc/self/status); true when that cannot be read, so that the other hints stand.
func holdsNetAdmin(status: String? = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) -> Bool {
    guard let line = status?.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
          let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return true }
    return mask & (1 << 12) != 0  // CAP_NET_ADMIN
}

/// The note for a kernel's EPERM or EACCES: a missing capability; a table another process owns
/// (the only thing that refuses root holding CAP_NET_ADMIN); or privileges in general.
func permissionHint(errno: Int32, euid: uid_t = geteuid(), holdsNetAdmin: Bool = holdsNetAdmin()) -> String {
    if euid == 0 && !holdsNetAdmin { return missingCapabilityHint }
    return euid == 0 && errno == EPERM ? ownedTableHint : privilegeHint
}

/// Runs `body`, turning a kernel failure into its description on stderr and exit 2.
func withKernelErrors<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as any KernelFailure {
        printError("zonewall: \(what): \(e)")
        if e.errno == EPERM || e.errno == EACCES { printError(permissionHint(errno: e.errno)) }
        throw ExitCode(2)
    }
}
