import ArgumentParser
import Conntrack
import Foundation
import Revocation
import SocketDiag
import ZonePolicy

/// Revocation from the one-shot commands: after a commit, the established flows the new
/// policy denies lose their conntrack entries, each one printed.
enum Revoking {
    /// Scans the conntrack table of `netns` (here when nil) and deletes what `policy` denies.
    /// Exits 2 when ctnetlink fails: the rules are in force, but flows that lost permission
    /// may still be running, and the operator must know.
    static func afterCommit(of policy: Policy, previous: Policy?, netns: String?) throws {
        guard policy.settings.revokeEstablished else { return }
        let start = ContinuousClock.now
        let report: RevocationReport
        do {
            let table = try NetlinkConntrack(namespace: netns)
            report = try Revocation.revoke(in: table, sockets: sockets(netns: netns), new: policy, old: previous)
        } catch {
            printError("zonewall: the rules are in force, but revoking established flows failed: \(error)")
            throw ExitCode(2)
        }
        if let error = report.socketsError { printError("zonewall: warning: \(socketsWarning): \(error)") }
        for r in report.revoked { print("zonewall: \(describe(r))") }
        print("zonewall: revoked \(report.revoked.count) established flow(s) the policy denies "
              + "(\(report.scanned) conntrack entries scanned in \(KernelSync.milliseconds(since: start)))")
    }

    /// The socket table of `netns` (here when nil), to judge local ends by their owner; nil,
    /// with a warning, when sock_diag cannot be opened (owners are then unknown).
    static func sockets(netns: String?) -> NetlinkSockets? {
        do { return try NetlinkSockets(namespace: netns) } catch {
            printError("zonewall: warning: \(socketsWarning): \(error)")
            return nil
        }
    }

    static let socketsWarning = "cannot read the socket table, so flows of local units, cgroups and users are revoked only where every zone they could belong to denies them"

    /// `revoked tcp 192.0.2.20:40000 → 203.0.113.5 port 5432 (web → db): no allow rule covers web → db`
    static func describe(_ r: RevokedFlow) -> String {
        let (proto, port) = r.entry.protoAndPort
        let src = r.entry.hasPorts ? "\(r.entry.sourceText) port \(r.entry.sourcePort)" : r.entry.sourceText
        return "revoked \(proto) \(src) → \(r.entry.destinationText) port \(port) (\(r.from) → \(r.to)): \(r.reason)"
    }
}
