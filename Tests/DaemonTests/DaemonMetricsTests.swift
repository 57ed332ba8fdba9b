import Daemon
import Foundation
import Reconciler
import Testing

/// The metrics an operator scrapes: every family with its `# HELP` line and its `# TYPE`, and
/// values that follow the daemon's state.
struct DaemonMetricsTests {
    @Test func everyFamilyHasHelpAndFollowsTheState() throws {
        let metrics = DaemonMetrics()
        var state = ReconcilerState(policyDirectory: "/etc/zonewall", pid: 1)
        state.applies = 3
        state.zones = 7
        state.inSync = true
        state.lastApplyDurationSeconds = 0.004
        state.memberSource = MemberSourceStatus(kind: "etcd", connected: true, lostReason: nil, since: Date(), instances: 2, addresses: 2,
                                                rejectedKeys: 0, rejectionsTotal: 1, revision: 9)
        state.revokedFlowsByPair = ["web db": 2]
        metrics.update(state)
        let text = metrics.render()
        let families = Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] })
        #expect(families.count >= 15, "\(text)")
        for family in families {
            #expect(text.contains("# HELP \(family) "), "no HELP for \(family):\n\(text)")
        }
        #expect(text.contains("\nzonewall_applies_total 3\n"), "\(text)")
        #expect(text.contains("\nzonewall_zones 7"), "\(text)")
        #expect(text.contains("\nzonewall_in_sync 1"), "\(text)")
        #expect(text.contains("zonewall_apply_duration_seconds_bucket{le=\"0.005\"} 1"), "\(text)")
        #expect(text.contains("zonewall_revoked_flows_total{from=\"web\",to=\"db\"} 2"), "\(text)")
        #expect(text.contains("\nzonewall_etcd_rejected_keys_total 1\n"), "\(text)")
        #expect(text.contains("\nzonewall_enforcing_table_found_at_start 0"), "\(text)")
        state.enforcingTableFoundAtStart = true
        metrics.update(state)
        #expect(metrics.render().contains("\nzonewall_enforcing_table_found_at_start 1"), "\(metrics.render())")

        // Families come in name order, each whole: HELP, TYPE, then its samples.
        let lines = metrics.render().split(separator: "\n")
        let names = lines.filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) }
        #expect(names == names.sorted(), "\(names)")
        var current = ""
        for line in lines {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                current = String(line.split(separator: " ")[2])
            } else {
                let sample = line.prefix { $0 != "{" && $0 != " " }
                #expect(sample.hasPrefix(current), "\(line) is not in family \(current)")
            }
        }
    }
}
