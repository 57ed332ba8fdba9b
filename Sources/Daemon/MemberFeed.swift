import Foundation
import Logging
import Membership
import Reconciler
import Synchronization
import ZonePolicy

/// The daemon's side of a member source: the members known so far, merged into each loaded
/// policy, and the source's health for the state file and metrics.
///
/// Ignored keys are logged once per key and reason, and counted; none ever stops the daemon.
public final class MemberFeed: Sendable {
    private struct State {
        var table: MemberTable
        /// Rejections already logged, by key: the keys ignored right now.
        var reported: [String: String] = [:]
        /// Keys the last merge ignored that the source did not (unknown zone, address taken).
        var mergeRejected: Set<String> = []
        var rejectionsTotal = 0
        var since = Date()
        var connectedBefore = false
        /// Members changed since the cache was last written.
        var unsaved = false
    }
    private let state: Mutex<State>
    private let logger: Logger
    let kind: String

    public init(prefix: String, cached: [Member], kind: String = "etcd", logger: Logger) {
        state = Mutex(State(table: MemberTable(prefix: prefix, members: cached)))
        self.logger = logger
        self.kind = kind
    }

    /// The members now.
    public var table: MemberTable { state.withLock { $0.table } }

    /// Applies an event. `changed`: the members changed (the policy must be recompiled);
    /// `health`: the source connected or lost its connection, or a key was rejected (the
    /// status must be published now; member counts follow with the next reload).
    public func apply(_ event: MemberEvent) -> (changed: Bool, health: Bool) {
        state.withLock { s in
            let lostBefore = s.table.lostReason
            let changed = s.table.apply(event)
            var health = false
            if s.table.connected != s.connectedBefore { s.since = Date(); s.connectedBefore = s.table.connected; health = true }
            // Still lost, for another reason: the status shows the current reason, not the first.
            if case .lost = event, s.table.lostReason != lostBefore { health = true }
            switch event {
            case .rejected(let r):
                note([r], &s); health = true
            case .resynced(_, let rejected, _):
                // A key ignored before the list and gone from it is ignored no more.
                let now = Set(rejected.map(\.key)).union(s.mergeRejected)
                s.reported = s.reported.filter { now.contains($0.key) }
                note(rejected, &s); health = true
            case .removed(let k):
                if s.reported.removeValue(forKey: s.table.key(k)) != nil { health = true }
            case .cleared(let key):
                if s.reported.removeValue(forKey: key) != nil { health = true }
            case .added(let m):
                // A valid value replaces an ignored one (the merge may still ignore it).
                if !s.mergeRejected.contains(s.table.key(m.key)), s.reported.removeValue(forKey: s.table.key(m.key)) != nil { health = true }
            case .lost, .progressed:
                break
            }
            if changed { s.unsaved = true }
            return (changed, health)
        }
    }

    /// Whether members changed since the last call: the cache needs writing.
    public func takeUnsaved() -> Bool {
        state.withLock { s in defer { s.unsaved = false }; return s.unsaved }
    }

    /// The policy with the members added; logs and counts keys ignored for the first time.
    public func merge(into policy: Policy) -> Policy {
        // Without members there is nothing to look up: no index (a 100,000-member policy's
        // takes tens of ms to build, on every file edit).
        let index = state.withLock { $0.table.members.isEmpty } ? nil : index(of: policy)
        return state.withLock { s in
            let (merged, rejected) = s.table.merged(into: policy, index: index)
            s.mergeRejected = Set(rejected.map(\.key)).subtracting(s.table.rejected.keys)
            note(rejected, &s, forget: true)
            return merged
        }
    }

    /// The index of the files' policy, built once per policy read from the files: etcd events
    /// merge into the same policy again and again. The cached copy pins the policy's storage,
    /// so the same zone storage means the same zones.
    private let indexCache = Mutex<(policy: Policy, index: PolicyIndex)?>(nil)

    private func index(of policy: Policy) -> PolicyIndex {
        func storage(_ p: Policy) -> UnsafeRawPointer? { p.zones.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        if let cached = indexCache.withLock({ $0 }), cached.policy.zones.count == policy.zones.count,
           storage(cached.policy) == storage(policy) {
            return cached.index
        }
        let index = PolicyIndex(policy)
        indexCache.withLock { $0 = (policy, index) }
        return index
    }

    private func note(_ rejected: [MemberRejection], _ s: inout State, forget: Bool = false) {
        if forget {  // a key no longer rejected may be reported again if it goes bad again
            let now = Set(rejected.map(\.key))
            s.reported = s.reported.filter { now.contains($0.key) }
        }
        for r in rejected where s.reported[r.key] != r.reason {
            s.reported[r.key] = r.reason
            s.rejectionsTotal += 1
            // Keys and values are anyone's who may register: escaped, they cannot forge log lines or
            // drive a terminal.
            logger.error("\(kind) key ignored", metadata: ["key": "\(Diagnostic.escaped(r.key))", "reason": "\(Diagnostic.escaped(r.reason))"])
        }
    }

    /// The health and counts for the state file.
    public var status: MemberSourceStatus {
        state.withLock { s in
            MemberSourceStatus(kind: kind, connected: s.table.connected, lostReason: s.table.lostReason, since: s.since,
                               instances: s.table.members.count, addresses: s.table.members.values.reduce(0) { $0 + $1.count },
                               rejectedKeys: s.reported.count, rejectionsTotal: s.rejectionsTotal, revision: s.table.revision)
        }
    }
}
