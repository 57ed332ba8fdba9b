import ArgumentParser
import Conntrack
import Foundation
import Revocation
import SocketDiag
import ZonePolicy

/// `zonewall revoke`: deletes the established flows the policy denies, now, without applying.
struct RevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Delete the conntrack entries of established flows the policy denies (--dry-run: only list them).",
        discussion: """
            `apply` and `run` do this after every commit that removes permission (unless \
            settings: revoke_established: false). This command does it on demand, e.g. after \
            zonewall was installed on a host whose flows predate it.
            """
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions

    @Flag(help: "List the flows that would be revoked; delete nothing.")
    var dryRun = false

    func run() throws {
        var (policy, _) = try options.loadOrExit(printWarnings: false)
        policy.settings.revokeEstablished = true  // asked for explicitly
        let start = ContinuousClock.now
        let report: RevocationReport
        do {
            let live = try NetlinkConntrack(namespace: kernelOptions.netns)
            report = try Revocation.revoke(in: dryRun ? DryRun(base: live) : live, sockets: Revoking.sockets(netns: kernelOptions.netns),
                                           new: policy, old: nil)
        } catch {
            printError("zonewall: revoking established flows: \(error)")
            throw ExitCode(2)
        }
        if let error = report.socketsError { printError("zonewall: warning: \(Revoking.socketsWarning): \(error)") }
        for r in report.revoked { print("zonewall: \(dryRun ? "would be " : "")\(Revoking.describe(r))") }
        print("zonewall: \(dryRun ? "would revoke" : "revoked") \(report.revoked.count) established flow(s) the policy denies "
              + "(\(report.scanned) conntrack entries scanned in \(KernelSync.milliseconds(since: start)))")
    }

    /// Scans the real table and deletes nothing.
    struct DryRun: ConntrackTable {
        let base: any ConntrackTable
        func scan(_ body: (ConntrackEntry) -> Void) throws { try base.scan(body) }
        func delete(_ entries: [ConntrackEntry]) throws -> Int { 0 }
        func localAddresses() throws -> Set<LocalAddress> { try base.localAddresses() }
    }
}
