import ArgumentParser
import Foundation
import Membership
import Netfilter
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

    @Option(help: ArgumentHelp("The daemon's state directory: its last known etcd members count as policy here (env ZONEWALL_STATE_DIRECTORY).", valueName: "DIR"))
    var stateDirectory: String = ProcessInfo.processInfo.environment["ZONEWALL_STATE_DIRECTORY"] ?? "/var/lib/zonewall"

    @Option(help: "Most lines of the pending transaction to print.")
    var maxLines: Int = 40

    @Option(help: "The daemon's state file; its report is shown when the file exists.")
    var stateFile: String = "/run/zonewall/state.json"

    func run() throws {
        var daemonState: ReconcilerState?
        if FileManager.default.fileExists(atPath: stateFile) {
            do {
                daemonState = try StateFile(path: stateFile).read()
                printDaemon(daemonState!)
            } catch {
                printError("zonewall: cannot read state file \(stateFile): \(error)")
            }
        }
        var (policy, _) = try options.loadOrExit(printWarnings: false)
        // The daemon enforces its etcd members too: the last known ones are in its cache.
        if daemonState?.memberSource != nil, let members = try? MemberCache(path: stateDirectory + "/etcd-members.json").readTable() {
            policy = members.merged(into: policy).policy
        }
        let desired = try withExit2 { try scopeOptions.compile(policy, netns: kernelOptions.netns) }
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
        let tx = KernelSync.transaction(from: snapshot.table, to: desired)
        let lines = Self.text(of: tx, declaredIn: desired)
        print("\(tx.replacesTable ? "apply would replace the table" : "apply would change \(tx.elementChanges) element(s)"):")
        for l in lines.prefix(maxLines) { print("  \(l)") }
        if lines.count > maxLines { print("  … \(lines.count - maxLines) more line(s)") }
        throw ExitCode(4)
    }

    /// The daemon's own report: what it enforces, its last apply, its last error.
    func printDaemon(_ s: ReconcilerState) {
        let alive = kill(s.pid, 0) == 0
        let iso = ISO8601DateFormatter()
        print("daemon: pid \(s.pid) (\(alive ? "running" : "not running")), policies \(s.policyDirectory), since \(iso.string(from: s.startedAt))")
        print("  enforcing: digest \(s.policyDigest ?? "-"), \(s.zones) zones, \(s.members) members, \(s.rules) rules, \(s.elements) elements")
        if let at = s.lastApplyAt {
            let ms = (s.lastApplyDurationSeconds ?? 0) * 1000
            print("  last apply: \(iso.string(from: at)) (\(s.lastApplyReason ?? "?")), \(String(format: "%.2f", ms)) ms, \(s.lastApplyChanges ?? 0) changes")
        }
        print("  applies \(s.applies), failures \(s.applyFailures), drift repairs \(s.driftRepairs), policy load errors \(s.policyLoadErrors)")
        print("  kernel in sync (as the daemon last saw it): \(s.inSync ? "yes" : "no")")
        if let m = s.memberSource {
            let health = m.connected ? "connected" : "NOT CONNECTED, last known members kept (\(m.lostReason ?? "?"))"
            print("  \(m.kind): \(health) since \(iso.string(from: m.since)); \(m.instances) instances, \(m.addresses) addresses, revision \(m.revision.map(String.init) ?? "-"), \(m.rejectedKeys) keys ignored")
        }
        if let e = s.lastError {
            print("  last error\(s.lastErrorAt.map { " at " + iso.string(from: $0) } ?? ""): \(e)")
            for d in s.lastErrorDiagnostics { print("    \(d)") }
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
