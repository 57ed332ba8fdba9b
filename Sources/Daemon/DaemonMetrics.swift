import Prometheus
import Reconciler

/// The daemon's Prometheus metrics, fed from reconciler state changes. Made in the registry
/// directly, each with its `# HELP` line: what an operator reads next to the number.
public final class DaemonMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let applies: Counter
    private let failures: Counter
    private let duration: DurationHistogram
    private let driftRepairs: Counter
    private let loadErrors: Counter
    private let zones: Gauge
    private let members: Gauge
    private let rules: Gauge
    private let elements: Gauge
    private let lastSuccess: Gauge
    private let inSync: Gauge
    /// 1 while the policy files are valid, 0 while the last load failed (the last good policy
    /// stays in force): a broken policy shows until it is fixed, not only as one more error.
    private let policyValid: Gauge
    /// 1 while the daemon enforces the table it found at start (its files were invalid then):
    /// zones, members and rules read 0 as no policy has been loaded.
    private let tableFoundAtStart: Gauge
    private var previous: ReconcilerState?
    /// `zonewall_revoked_flows_total{from,to}`, one counter per zone pair seen.
    private var revoked: [String: Counter] = [:]
    /// `zonewall_identity_cgroups{zone}` and `zonewall_identity_uids{zone}`, one pair per identity
    /// zone seen; a zone that left the policy reads 0.
    private var identities: [String: (cgroups: Gauge, uids: Gauge)] = [:]
    /// Created on the first state that has a member source, so a daemon without etcd shows none.
    private var etcd: (connected: Gauge, instances: Gauge, rejected: Counter)?

    /// Help texts of the metrics made later, with labels (one text per name, as the registry requires).
    static let help = [
        "zonewall_revoked_flows_total": "Established flows whose conntrack entries were deleted after a commit removed their permission, by zone pair.",
        "zonewall_identity_cgroups": "Cgroups an identity zone (unit or cgroup) resolves to on this host.",
        "zonewall_identity_uids": "User ids an identity zone resolves to on this host.",
        "zonewall_etcd_connected": "1 while the etcd member source is connected; 0 while the last known members are kept.",
        "zonewall_etcd_instances": "Instances registered in etcd that the daemon enforces.",
        "zonewall_etcd_rejected_keys_total": "etcd keys ignored: an unknown zone, a malformed value or an unknown field.",
        "zonewall_denied_packets_total": "Packets denied (or audited) by the policy and read from NFLOG, by zone pair and verdict.",
    ]

    /// Apply durations: a membership edit commits in milliseconds, a cold start of a large
    /// policy in seconds.
    static let durationBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60),
    ]

    public init() {
        let r = registry
        applies = r.makeCounter(descriptor: Self.named("zonewall_applies_total", "Commits to the kernel that changed the table (start, edits, drift repairs)."))
        failures = r.makeCounter(descriptor: Self.named("zonewall_apply_failures_total", "Commits the kernel refused; the previous rule set stayed in force."))
        duration = r.makeDurationHistogram(descriptor: Self.named("zonewall_apply_duration_seconds",
                                                                  "Time from the decision to apply to the kernel's acknowledgement of the commit."),
                                           buckets: Self.durationBuckets)
        driftRepairs = r.makeCounter(descriptor: Self.named("zonewall_drift_repairs_total", "Changes to the table by another program, undone."))
        loadErrors = r.makeCounter(descriptor: Self.named("zonewall_policy_load_errors_total", "Policy loads that failed; the last good policy stayed in force."))
        zones = r.makeGauge(descriptor: Self.named("zonewall_zones", "Zones of the policy in force."))
        members = r.makeGauge(descriptor: Self.named("zonewall_members", "Zone members of the policy in force (files and etcd)."))
        rules = r.makeGauge(descriptor: Self.named("zonewall_rules", "Allow rules of the policy in force."))
        elements = r.makeGauge(descriptor: Self.named("zonewall_set_elements", "Set elements of the table in force."))
        lastSuccess = r.makeGauge(descriptor: Self.named("zonewall_last_success_timestamp_seconds", "Unix time of the last commit the kernel accepted."))
        inSync = r.makeGauge(descriptor: Self.named("zonewall_in_sync", "1 when the kernel held the desired table at the last check."))
        policyValid = r.makeGauge(descriptor: Self.named("zonewall_policy_valid", "1 while the policy files are valid, 0 while the last load failed."))
        tableFoundAtStart = r.makeGauge(descriptor: Self.named("zonewall_enforcing_table_found_at_start",
                                                               "1 while the rule set found in force at start is enforced because the policy files were invalid then; zones, members and rules read 0 meanwhile."))
    }

    /// A metric's whole name with its help text.
    static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// One of the metrics made later, by name, with its text from `help`.
    static func named(_ name: String) -> MetricNameDescriptor { named(name, help[name] ?? "") }

    func labeledCounter(_ name: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: Self.named(name), labels: labels)
    }

    func labeledGauge(_ name: String, _ labels: [(String, String)]) -> Gauge {
        registry.makeGauge(descriptor: Self.named(name), labels: labels)
    }

    /// Moves counters by what changed since the previous state.
    public func update(_ s: ReconcilerState) {
        let p = previous
        if s.applies > (p?.applies ?? 0) {
            applies.increment(by: Int64(s.applies - (p?.applies ?? 0)))
            if let d = s.lastApplyDurationSeconds { duration.record(.nanoseconds(Int64(d * 1e9))) }
        }
        if s.applyFailures > (p?.applyFailures ?? 0) { failures.increment(by: Int64(s.applyFailures - (p?.applyFailures ?? 0))) }
        if s.driftRepairs > (p?.driftRepairs ?? 0) { driftRepairs.increment(by: Int64(s.driftRepairs - (p?.driftRepairs ?? 0))) }
        if s.policyLoadErrors > (p?.policyLoadErrors ?? 0) { loadErrors.increment(by: Int64(s.policyLoadErrors - (p?.policyLoadErrors ?? 0))) }
        zones.set(Int64(s.zones))
        members.set(Int64(s.members))
        rules.set(Int64(s.rules))
        elements.set(Int64(s.elements))
        inSync.set(Int64(s.inSync ? 1 : 0))
        policyValid.set(Int64(s.lastErrorDiagnostics.isEmpty ? 1 : 0))
        tableFoundAtStart.set(Int64(s.enforcingTableFoundAtStart == true ? 1 : 0))
        if let t = s.lastSuccessAt { lastSuccess.set(t.timeIntervalSince1970) }
        for (pair, n) in s.revokedFlowsByPair ?? [:] {
            let before = p?.revokedFlowsByPair?[pair] ?? 0
            guard n > before else { continue }
            let parts = pair.split(separator: " ", maxSplits: 1).map(String.init)
            let counter = revoked[pair] ?? labeledCounter("zonewall_revoked_flows_total", [("from", parts.first ?? ""), ("to", parts.last ?? "")])
            revoked[pair] = counter
            counter.increment(by: Int64(n - before))
        }
        if let counts = s.identityCounts {
            for zone in Set(counts.keys).union(identities.keys) {
                let g = identities[zone] ?? (labeledGauge("zonewall_identity_cgroups", [("zone", zone)]),
                                             labeledGauge("zonewall_identity_uids", [("zone", zone)]))
                identities[zone] = g
                g.cgroups.set(Int64(counts[zone]?.cgroups ?? 0))
                g.uids.set(Int64(counts[zone]?.uids ?? 0))
            }
        }
        if let m = s.memberSource {
            let g = etcd ?? (registry.makeGauge(descriptor: Self.named("zonewall_etcd_connected")),
                             registry.makeGauge(descriptor: Self.named("zonewall_etcd_instances")),
                             registry.makeCounter(descriptor: Self.named("zonewall_etcd_rejected_keys_total")))
            etcd = g
            g.connected.set(Int64(m.connected ? 1 : 0))
            g.instances.set(Int64(m.instances))
            let before = p?.memberSource?.rejectionsTotal ?? 0
            if m.rejectionsTotal > before { g.rejected.increment(by: Int64(m.rejectionsTotal - before)) }
        }
        previous = s
    }

    /// The Prometheus text exposition, its families in name order (the registry emits them in
    /// the order of its dictionaries, which changes from one process to the next), each family's
    /// lines as the registry wrote them.
    public func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return Self.sortedByFamily(String(decoding: buffer, as: UTF8.self))
    }

    /// `text`'s families (a `# HELP` line, or a `# TYPE` line not right after its family's
    /// `# HELP`, starts one), sorted by name, stably.
    static func sortedByFamily(_ text: String) -> String {
        var families: [(name: Substring, lines: [Substring])] = []
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 3)
            let isHelp = words.count >= 3 && words[0] == "#" && words[1] == "HELP"
            let isType = words.count >= 3 && words[0] == "#" && words[1] == "TYPE"
            if isHelp || (isType && families.last.map { $0.name != words[2] || $0.lines.count > 1 } ?? true) || families.isEmpty {
                families.append((isHelp || isType ? words[2] : "", [line]))
            } else {
                families[families.count - 1].lines.append(line)
            }
        }
        let sorted = families.enumerated().sorted { ($0.element.name, $0.offset) < ($1.element.name, $1.offset) }
        return sorted.flatMap(\.element.lines).joined(separator: "\n") + (text.isEmpty ? "" : "\n")
    }
}
