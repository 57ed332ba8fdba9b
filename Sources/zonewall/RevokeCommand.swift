import ArgumentParser
import Conntrack
import Foundation
import Revocation
import SocketDiag
import ZoneCompiler
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

    @OptionGroup var permissions: PermissionOptions

    @Flag(help: "List the flows that would be revoked; delete nothing.")
    var dryRun = false

    @Flag(help: "Revoke by the policy files even when the table in force was compiled from another policy.")
    var force = false

    func run() throws {
        var (policy, _) = try options.loadOrExit(printWarnings: false, strictModes: permissions.strictModes, changesKernel: !dryRun)
        policy.settings.revokeEstablished = true  // asked for explicitly
        try checkInForce(policy)
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

    /// Flows are judged by the files; the firewall admits what the table in force admits. When
    /// the two differ (an edit not applied yet, a daemon with --scope or etcd members), revoking
    /// by the files would cut flows the firewall lets through, which come back at once or, behind
    /// NAT, break for good: refused without --force (a dry run only warns).
    func checkInForce(_ policy: Policy) throws {
        let place = kernelOptions.place(KernelSync.tableName)
        let kernel = try withKernelErrors("opening nftables") { try kernelOptions.openKernel() }
        let inForce = try withKernelErrors("reading \(place)") {
            try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName).table
        }
        let problem: String
        if let inForce {
            let desired = ZoneCompiler.compile(policy, host: GatheredHostFacts.gather(policy).facts)
            guard !KernelSync.equivalent(inForce, desired) else { return }
            problem = "\(place) was not compiled from these policy files (zonewall status shows the difference): judged by them, "
                + "flows the firewall admits would be cut"
        } else {
            // No zonewall table: nothing stops a cut flow from coming straight back.
            problem = "no \(place) is in force: judged by the policy files alone, flows the firewall admits would be cut"
        }
        if dryRun || force {
            printError("zonewall: warning: \(problem)")
        } else {
            printError("zonewall: \(problem); apply the files first, or pass --force")
            throw ExitCode(1)
        }
    }

    /// Scans the real table and deletes nothing.
    struct DryRun: ConntrackTable {
        let base: any ConntrackTable
        func scan(_ body: (ConntrackEntry) -> Void) throws { try base.scan(body) }
        func delete(_ entries: [ConntrackEntry]) throws -> Int { 0 }
        func localAddresses() throws -> Set<LocalAddress> { try base.localAddresses() }
    }
}
