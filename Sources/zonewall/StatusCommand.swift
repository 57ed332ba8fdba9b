import ArgumentParser
import Daemon
import Foundation
import HostScope
import Membership
import Netfilter
import NetworkNamespace
import Reconciler
import Ruleset
import ZoneCompiler
import ZonePolicy

/// `zonewall status`: whether the kernel holds exactly the compiled policy (exit 0) or not (exit 4).
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Compare the kernel's table with the policy: 'in sync' (exit 0) or the difference (exit 4)."
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions
    @OptionGroup var scopeOptions: ScopeOptions

    @Option(help: ArgumentHelp("The daemon's state directory: its last known etcd members count as policy here (default: the one the daemon records, else env ZONEWALL_STATE_DIRECTORY, else /var/lib/zonewall).", valueName: "DIR"))
    var stateDirectory: String?

    @Option(help: "Most lines of the pending transaction to print.")
    var maxLines: Int = 40

    func validate() throws {
        guard maxLines >= 0 else { throw ValidationError("--max-lines must be 0 or more") }
    }

    @Flag(help: "The daemon runs with --own-table: the table must carry the owner (and persist) flags.")
    var ownTable = false

    @Option(help: ArgumentHelp(
        "The daemon's state file; its report is shown when the file exists.",
        discussion: "Default: the one `zonewall run` writes for the same --netns and --policies."))
    var stateFile: String?

    @Option(help: "The daemon's flow summary; the top denied pairs of the last hour are shown when it exists (default: /run/zonewall/flows-ns-DEV-INODE-HASH.json, by the namespace's identity and the policy directory, as the state file).")
    var flowSummaryFile: String?

    func run() throws {
        // An explicit state file must be one: checked before anything is printed.
        if let explicit = stateFile, !explicit.isEmpty {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: explicit, isDirectory: &isDirectory), !isDirectory.boolValue else {
                printError("zonewall: no state file at \(explicit) (is the daemon running with --state-file \(explicit)?)")
                throw ExitCode.failure
            }
        }
        let confirmations = ConfirmationStore(netns: kernelOptions.netns, policyDirectory: options.policies)
        // This directory's window, or another one's in the same namespace: either undoes edits here.
        if let p = confirmations.pending() ?? ConfirmationStore.pending(inNamespace: kernelOptions.netns).first {
            let left = max(0, p.deadline.timeIntervalSinceNow)
            let alive = kill(p.pid, 0) == 0
            print("pending confirmation: run `\(kernelOptions.confirmCommand(policies: p.policyDirectory))` before "
                  + "\(ISO8601DateFormatter().string(from: p.deadline)) "
                  + "(\(String(format: "%.0f", left)) s left) or the previous rule set comes back; "
                  + "\(p.owner == .apply ? "guard" : "daemon") pid \(p.pid)\(alive ? "" : " (NOT RUNNING: nothing will be undone)")")
        } else if let outcome = confirmations.lastOutcome() {
            print("last confirmation window: \(outcome)")
        }
        let flows = flowSummaryFile ?? FlowLogConfiguration.defaultSummaryFile(netns: kernelOptions.netns, policyDirectory: options.policies)
        if FileManager.default.fileExists(atPath: flows), let s = try? FlowSummary.read(flows) {
            printFlows(s)
        }
        var daemonState: ReconcilerState?
        if let stateFile = kernelOptions.stateFile(stateFile, policies: options.policies),
           FileManager.default.fileExists(atPath: stateFile) {
            do {
                let state = try StateFile(path: stateFile).read()
                if let other = Self.mismatch(state, netns: kernelOptions.netns, policies: options.policies) {
                    print("daemon: \(stateFile) is the state of a daemon for \(other); not shown")
                } else {
                    daemonState = state
                    printDaemon(state)
                }
            } catch {
                let reason = error is DecodingError ? "not a zonewall state file" : "\((error as NSError).localizedFailureReason ?? "\(error)")"
                printError("zonewall: cannot read state file \(stateFile): \(reason)")
                if self.stateFile?.isEmpty == false { throw ExitCode.failure }
            }
        }
        if daemonState == nil {
            // No daemon of these policies here; another zonewall may hold the namespace.
            if let held = namespaceLock().holder {
                let policies = StateFile.canonicalDirectory(options.policies)
                if held.holder.contains("policies \(policies) (") {
                    // The daemon of these very policies, whose state is elsewhere.
                    print("daemon: \(held.who) manages \(held.place), but its state is not in "
                          + "\(kernelOptions.stateFile(stateFile, policies: options.policies) ?? "a state file") "
                          + "(started with another --state-file?); pass that file with --state-file")
                } else {
                    print("daemon: none with policies \(policies); \(held.place) is managed by \(held.who)")
                }
            }
        }
        var (policy, _) = try options.loadOrExit(printWarnings: false)
        // The daemon enforces its etcd members too: the last known ones are in its cache.
        // Where the daemon keeps them: as told, else as it recorded (its --state-directory may not be the default).
        let cache = stateDirectory.map { $0 + "/etcd-members.json" } ?? daemonState?.memberCache
            ?? (ProcessInfo.processInfo.environment["ZONEWALL_STATE_DIRECTORY"] ?? "/var/lib/zonewall") + "/etcd-members.json"
        if daemonState?.memberSource != nil, let members = try? MemberCache(path: cache).readTable() {
            policy = members.merged(into: policy).policy
        }
        let host = GatheredHostFacts.gather(policy)
        // As the daemon runs, unless told otherwise: its environment file may set ZONEWALL_SCOPE
        // where this shell does not, and its --own-table is not an option of this command's.
        var scoping = scopeOptions
        if scoping.scopeOption == nil, ProcessInfo.processInfo.environment["ZONEWALL_SCOPE"] == nil,
           let s = daemonState?.scope.flatMap(HostScope.init(rawValue:)), s != scoping.scope {
            scoping.scopeOption = s
            print("  (compared as the daemon runs: --scope \(s.rawValue))")
        }
        var desired = try withExit2 { try scoping.compile(policy, netns: kernelOptions.netns, host: host.facts) }
        if ownTable || daemonState?.ownedTable == true { desired.flags = NetlinkKernel.ownedTableFlags }
        let place = kernelOptions.place(KernelSync.tableName)
        let snapshot = try withKernelErrors("reading \(place)") {
            let kernel = try kernelOptions.openKernel()
            return try kernel.dump(family: desired.family, table: desired.name)
        }
        if KernelSync.equivalent(snapshot.table, desired) {
            print("in sync: \(place) holds the compiled policy (\(desired.elementCount) elements, generation \(snapshot.generation))")
            return
        }
        print("out of sync: \(place) differs from the policy:")
        for line in KernelSync.differences(snapshot.table, desired) { print("  \(line)") }
        let tx: Transaction
        let what: String
        if snapshot.table == nil {
            // As apply creates it: in one piece here, with the hooks last.
            tx = Transaction.stages(creating: desired, budget: .max)[0].transaction
            what = "apply would create the table"
        } else {
            tx = KernelSync.transaction(from: snapshot.table, to: desired)
            what = tx.replacesTable ? "apply would replace the table" : "apply would change \(tx.elementChanges) element(s)"
        }
        let lines = Self.text(of: tx, declaredIn: desired)
        print("\(what):")
        for l in lines.prefix(maxLines) { print("  \(l)") }
        if lines.count > maxLines { print("  … \(lines.count - maxLines) more line(s)") }
        throw ExitCode(4)
    }

    /// What the state belongs to, when that is not this namespace and policy directory. The
    /// namespace is compared by identity where the state records it: `--netns X` and a shell
    /// inside X are the same namespace, and a namespace deleted and created again under the
    /// same name is not.
    static func mismatch(_ state: ReconcilerState, netns: String?, policies: String) -> String? {
        let here = StateFile.canonicalDirectory(policies)
        let there = StateFile.canonicalDirectory(state.policyDirectory)
        let place = state.namespace.map { "netns \($0)" } ?? "the host's namespace"
        let sameNamespace: Bool
        if let id = state.namespaceID {
            // The inode may be an earlier namespace's: the cookie tells them apart where both are known.
            let cookie = state.namespaceCookie.flatMap { recorded in NetworkNamespace.cookie(of: netns).map { $0 == recorded } } ?? true
            sameNamespace = NamespaceLock.identity(namespace: netns) == id && cookie
            if !sameNamespace, state.namespace == netns, let name = netns {
                return "an earlier network namespace named \(name), since deleted (its daemon governs nothing here)"
            }
        } else {
            sameNamespace = state.namespace == netns
        }
        guard !sameNamespace || here != there else { return nil }
        return "\(place) with policies \(there)"
    }

    /// Whether the namespace's lock is free (false too when it cannot be examined), and who holds
    /// it (a running zonewall). Taking it here, when it is free, holds it only for this check.
    func namespaceLock() -> (free: Bool, holder: NamespaceLock.Held?) {
        do { return (try NamespaceLock.acquire(namespace: kernelOptions.netns, holder: "zonewall status (pid \(getpid()))") != nil, nil) } catch {
            return (false, error)
        }
    }

    /// The top denied and audited zone pairs of the last hour, as the daemon counted them.
    func printFlows(_ s: FlowSummary) {
        print("flow log: NFLOG group \(s.group), \(s.records) packets read, \(s.lost) lost before reading (as of \(ISO8601DateFormatter().string(from: s.at)))")
        if s.bound == false {
            print("  NOT RECEIVING: another listener holds NFLOG group \(s.group) (a `zonewall log` started before the daemon?); "
                  + "the daemon binds it once that listener ends")
        }
        if s.top.isEmpty { print("  no denied or audited packets in the last hour") }
        for p in s.top {
            print("  \(p.verdict.padding(toLength: 6, withPad: " ", startingAt: 0)) \(p.from) → \(p.to): \(p.packets) packets in the last hour")
        }
    }

    /// The daemon's own report: what it enforces, its last apply, its last error.
    func printDaemon(_ s: ReconcilerState) {
        // The daemon holds its namespace's lock while it runs: a pid alone may have been reused.
        // (Taking the lock here, when it is free, holds it only for this check.)
        let (free, holder) = namespaceLock()
        let alive = kill(s.pid, 0) == 0 && !free
        let iso = ISO8601DateFormatter()
        print("daemon: pid \(s.pid) (\(alive ? "running" : "not running")), policies \(s.policyDirectory), since \(iso.string(from: s.startedAt))")
        if let holder, !alive || !holder.holder.contains("(pid \(s.pid))") {
            // This state's daemon is gone (or is not the one in charge): say who is.
            print("  \(holder.place) is now managed by \(holder.who)")
        }
        if s.enforcingTableFoundAtStart == true {
            print("  enforcing: digest \(s.policyDigest ?? "-"), the rule set found in force at start (\(s.elements) elements): "
                  + "the policy files had errors then, and no valid policy has been loaded since")
        } else {
            print("  enforcing: digest \(s.policyDigest ?? "-"), \(s.zones) zones, \(s.members) members, \(s.rules) rules, \(s.elements) elements")
        }
        for line in s.identities ?? [] { print("  identity: \(line)") }
        if let at = s.lastApplyAt {
            let ms = (s.lastApplyDurationSeconds ?? 0) * 1000
            print("  last apply: \(iso.string(from: at)) (\(s.lastApplyReason ?? "?")), \(String(format: "%.2f", ms)) ms, \(s.lastApplyChanges ?? 0) changes")
        }
        print("  applies \(s.applies), failures \(s.applyFailures), drift repairs \(s.driftRepairs), policy load errors \(s.policyLoadErrors)")
        print("  kernel in sync (as the daemon last saw it): \(s.inSync ? "yes" : "no")")
        if let d = s.pendingConfirmationDeadline {
            print("  edit waiting for `zonewall confirm` until \(iso.string(from: d))")
        }
        if let r = s.revertedEdit { print("  \(r)") }
        if let n = s.revokedFlows { print("  established flows revoked: \(n)") }
        if let m = s.memberSource {
            let health = m.connected ? "connected" : "NOT CONNECTED, last known members kept (\(m.lostReason ?? "?"))"
            print("  \(m.kind): \(health) since \(iso.string(from: m.since)); \(m.instances) instances, \(m.addresses) addresses, revision \(m.revision.map(String.init) ?? "-"), \(m.rejectedKeys) keys ignored")
        }
        if let e = s.lastError {
            print("  last error\(s.lastErrorAt.map { " at " + iso.string(from: $0) } ?? ""): \(e)")
            // A diagnostic's note is a line of its own: every line indented alike.
            for d in s.lastErrorDiagnostics { for line in d.split(separator: "\n") { print("    \(line)") } }
        }
    }

    /// `Transaction.nftText`, with element changes rendered using the policy's set declarations
    /// (an element-only transaction does not declare the sets it edits).
    static func text(of tx: Transaction, declaredIn table: Table) -> [String] {
        let t = "\(tx.family) \(tx.table)"
        return tx.changes.flatMap { change -> [String] in
            switch change {
            case .addElements(let name, let elements), .deleteElements(let name, let elements):
                guard let set = table.set(named: name) else { fallthrough }
                let verb = if case .addElements = change { "add" } else { "delete" }
                return ["\(verb) element \(t) \(name) { \(elements.map { NftText.render($0, of: set) }.joined(separator: ", ")) }"]
            default:
                var one = tx
                one.changes = [change]
                return one.nftText.split(separator: "\n").map(String.init)
            }
        }
    }
}
