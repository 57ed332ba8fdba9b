import CoreMetrics
import Metrics
import Prometheus
import Reconciler

/// The daemon's Prometheus metrics, fed from reconciler state changes.
public final class DaemonMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let applies: CoreMetrics.Counter
    private let failures: CoreMetrics.Counter
    private let duration: CoreMetrics.Timer
    private let driftRepairs: CoreMetrics.Counter
    private let loadErrors: CoreMetrics.Counter
    private let zones: CoreMetrics.Gauge
    private let members: CoreMetrics.Gauge
    private let rules: CoreMetrics.Gauge
    private let elements: CoreMetrics.Gauge
    private let lastSuccess: CoreMetrics.Gauge
    private let inSync: CoreMetrics.Gauge
    /// 1 while the policy files are valid, 0 while the last load failed (the last good policy
    /// stays in force): a broken policy shows until it is fixed, not only as one more error.
    private let policyValid: CoreMetrics.Gauge
    private var previous: ReconcilerState?
    private let factory: PrometheusMetricsFactory
    /// `zonewall_revoked_flows_total{from,to}`, one counter per zone pair seen.
    private var revoked: [String: CoreMetrics.Counter] = [:]
    /// `zonewall_identity_cgroups{zone}` and `zonewall_identity_uids{zone}`, one pair per identity
    /// zone seen; a zone that left the policy reads 0.
    private var identities: [String: (cgroups: CoreMetrics.Gauge, uids: CoreMetrics.Gauge)] = [:]
    /// Created on the first state that has a member source, so a daemon without etcd shows none.
    private var etcd: (connected: CoreMetrics.Gauge, instances: CoreMetrics.Gauge, rejected: CoreMetrics.Counter)?

    public init() {
        let factory = PrometheusMetricsFactory(registry: registry)
        self.factory = factory
        applies = CoreMetrics.Counter(label: "zonewall_applies_total", factory: factory)
        failures = CoreMetrics.Counter(label: "zonewall_apply_failures_total", factory: factory)
        duration = CoreMetrics.Timer(label: "zonewall_apply_duration_seconds", factory: factory)
        driftRepairs = CoreMetrics.Counter(label: "zonewall_drift_repairs_total", factory: factory)
        loadErrors = CoreMetrics.Counter(label: "zonewall_policy_load_errors_total", factory: factory)
        zones = CoreMetrics.Gauge(label: "zonewall_zones", factory: factory)
        members = CoreMetrics.Gauge(label: "zonewall_members", factory: factory)
        rules = CoreMetrics.Gauge(label: "zonewall_rules", factory: factory)
        elements = CoreMetrics.Gauge(label: "zonewall_set_elements", factory: factory)
        lastSuccess = CoreMetrics.Gauge(label: "zonewall_last_success_timestamp_seconds", factory: factory)
        inSync = CoreMetrics.Gauge(label: "zonewall_in_sync", factory: factory)
        policyValid = CoreMetrics.Gauge(label: "zonewall_policy_valid", factory: factory)
    }

    /// Moves counters by what changed since the previous state.
    public func update(_ s: ReconcilerState) {
        let p = previous
        if s.applies > (p?.applies ?? 0) {
            applies.increment(by: s.applies - (p?.applies ?? 0))
            if let d = s.lastApplyDurationSeconds { duration.recordSeconds(d) }
        }
        if s.applyFailures > (p?.applyFailures ?? 0) { failures.increment(by: s.applyFailures - (p?.applyFailures ?? 0)) }
        if s.driftRepairs > (p?.driftRepairs ?? 0) { driftRepairs.increment(by: s.driftRepairs - (p?.driftRepairs ?? 0)) }
        if s.policyLoadErrors > (p?.policyLoadErrors ?? 0) { loadErrors.increment(by: s.policyLoadErrors - (p?.policyLoadErrors ?? 0)) }
        zones.record(s.zones)
        members.record(s.members)
        rules.record(s.rules)
        elements.record(s.elements)
        inSync.record(s.inSync ? 1 : 0)
        policyValid.record(s.lastErrorDiagnostics.isEmpty ? 1 : 0)
        if let t = s.lastSuccessAt { lastSuccess.record(t.timeIntervalSince1970) }
        for (pair, n) in s.revokedFlowsByPair ?? [:] {
            let before = p?.revokedFlowsByPair?[pair] ?? 0
            guard n > before else { continue }
            let parts = pair.split(separator: " ", maxSplits: 1).map(String.init)
            let counter = revoked[pair] ?? CoreMetrics.Counter(label: "zonewall_revoked_flows_total",
                                                                dimensions: [("from", parts.first ?? ""), ("to", parts.last ?? "")],
                                                                factory: factory)
            revoked[pair] = counter
            counter.increment(by: n - before)
        }
        if let counts = s.identityCounts {
            for zone in Set(counts.keys).union(identities.keys) {
                let g = identities[zone] ?? (CoreMetrics.Gauge(label: "zonewall_identity_cgroups", dimensions: [("zone", zone)], factory: factory),
                                             CoreMetrics.Gauge(label: "zonewall_identity_uids", dimensions: [("zone", zone)], factory: factory))
                identities[zone] = g
                g.cgroups.record(counts[zone]?.cgroups ?? 0)
                g.uids.record(counts[zone]?.uids ?? 0)
            }
        }
        if let m = s.memberSource {
            let g = etcd ?? (CoreMetrics.Gauge(label: "zonewall_etcd_connected", factory: factory),
                             CoreMetrics.Gauge(label: "zonewall_etcd_instances", factory: factory),
                             CoreMetrics.Counter(label: "zonewall_etcd_rejected_keys_total", factory: factory))
            etcd = g
            g.connected.record(m.connected ? 1 : 0)
            g.instances.record(m.instances)
            let before = p?.memberSource?.rejectionsTotal ?? 0
            if m.rejectionsTotal > before { g.rejected.increment(by: m.rejectionsTotal - before) }
        }
        previous = s
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
