import Synchronization
import ZonePolicy

/// A member source held in memory, for reconciler and daemon tests: a little store whose
/// puts, deletes and outages become the same events the etcd source yields.
public final class InMemoryMemberSource: MemberSource {
    private struct State {
        var members: [MemberKey: [IPPrefix]] = [:]
        var revision: Int64 = 1
        var connected = true
        var continuations: [AsyncStream<MemberEvent>.Continuation] = []
    }
    private let state = Mutex(State())

    public init(_ members: [Member] = []) {
        state.withLock { s in for m in members { s.members[m.key] = m.addresses } }
    }

    public func events() -> AsyncStream<MemberEvent> {
        let (stream, continuation) = AsyncStream<MemberEvent>.makeStream()
        state.withLock { s in
            s.continuations.append(continuation)
            continuation.yield(s.connected ? Self.snapshot(s) : .lost("disconnected"))
        }
        return stream
    }

    private static func snapshot(_ s: State) -> MemberEvent {
        .resynced(s.members.keys.sorted().map { Member(key: $0, addresses: s.members[$0]!) }, rejected: [], revision: s.revision)
    }

    private func emit(_ change: (inout State) -> MemberEvent?) {
        state.withLock { s in
            guard let e = change(&s), s.connected else { return }
            for c in s.continuations { c.yield(e) }
        }
    }

    /// Registers or updates an instance.
    public func put(_ zone: String, _ instance: String, _ addresses: [IPPrefix]) {
        emit { s in
            let m = Member(key: MemberKey(zone: zone, instance: instance), addresses: addresses)
            s.members[m.key] = addresses; s.revision += 1
            return .added(m)
        }
    }

    /// Removes an instance (a delete or a lease expiry).
    public func delete(_ zone: String, _ instance: String) {
        emit { s in
            let k = MemberKey(zone: zone, instance: instance)
            guard s.members.removeValue(forKey: k) != nil else { return nil }
            s.revision += 1
            return .removed(k)
        }
    }

    /// Reports a key whose value is unusable.
    public func reject(_ key: String, _ reason: String) {
        emit { _ in .rejected(MemberRejection(key: key, reason: reason)) }
    }

    /// The store becomes unreachable: subscribers see `.lost`, and later changes only at `reconnect`.
    public func disconnect() {
        state.withLock { s in
            s.connected = false
            for c in s.continuations { c.yield(.lost("disconnected")) }
        }
    }

    /// The store is back: subscribers see a `.resynced` with everything.
    public func reconnect() {
        state.withLock { s in
            s.connected = true
            let e = Self.snapshot(s)
            for c in s.continuations { c.yield(e) }
        }
    }

    /// Ends every stream.
    public func finish() {
        state.withLock { s in for c in s.continuations { c.finish() }; s.continuations = [] }
    }
}
