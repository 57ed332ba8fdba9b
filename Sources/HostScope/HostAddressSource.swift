import Synchronization
import ZonePolicy

/// What a host-address source reports: this host's own addresses, as they come and go.
public enum HostAddressEvent: Hashable, Sendable {
    case added(IPPrefix)
    case removed(IPPrefix)
    /// Every address now (at start, and after lost notifications).
    case resynced([IPPrefix])
}

/// This host's addresses (on any interface), and their changes: the host fact `--scope local` needs.
public protocol HostAddressSource: Sendable {
    /// The addresses now.
    func current() throws -> [IPPrefix]
    /// A `.resynced` first, then each change; ends when the stream is dropped.
    func events() -> AsyncStream<HostAddressEvent>
}

/// Applies host-address events; the set of addresses now.
public struct HostAddresses: Hashable, Sendable {
    public private(set) var addresses: Set<IPPrefix>

    public init(_ addresses: [IPPrefix] = []) { self.addresses = Set(addresses) }

    /// True when the set changed.
    @discardableResult
    public mutating func apply(_ e: HostAddressEvent) -> Bool {
        switch e {
        case .added(let a): return addresses.insert(a).inserted
        case .removed(let a): return addresses.remove(a) != nil
        case .resynced(let all):
            let next = Set(all)
            defer { addresses = next }
            return next != addresses
        }
    }

    /// Sorted, for deterministic compiles.
    public var sorted: [IPPrefix] { addresses.sorted() }
}

/// Host addresses held in memory, for tests: add and remove them by hand.
public final class InMemoryHostAddresses: HostAddressSource {
    private struct State {
        var addresses: [IPPrefix]
        var continuations: [AsyncStream<HostAddressEvent>.Continuation] = []
    }
    private let state: Mutex<State>

    public init(_ addresses: [IPPrefix] = []) { state = Mutex(State(addresses: addresses)) }

    public func current() throws -> [IPPrefix] { state.withLock { $0.addresses } }

    public func events() -> AsyncStream<HostAddressEvent> {
        let (stream, c) = AsyncStream<HostAddressEvent>.makeStream()
        state.withLock { s in
            s.continuations.append(c)
            c.yield(.resynced(s.addresses))
        }
        return stream
    }

    /// An address appears on an interface.
    public func add(_ a: IPPrefix) {
        state.withLock { s in
            guard !s.addresses.contains(a) else { return }
            s.addresses.append(a)
            for c in s.continuations { c.yield(.added(a)) }
        }
    }

    /// An address goes away.
    public func remove(_ a: IPPrefix) {
        state.withLock { s in
            guard let i = s.addresses.firstIndex(of: a) else { return }
            s.addresses.remove(at: i)
            for c in s.continuations { c.yield(.removed(a)) }
        }
    }
}
