import Synchronization
import ZonePolicy

/// An address of one of this network namespace's own interfaces.
public struct LocalAddress: Hashable, Sendable {
    public var family: AddressFamily
    public var address: UInt128

    public init(family: AddressFamily, address: UInt128) {
        self.family = family
        self.address = address
    }
}

/// The kernel's connection-tracking table, as far as revocation uses it.
///
/// `NetlinkConntrack` (module `Conntrack`) talks ctnetlink; `InMemoryConntrack` is the fake
/// for reconciler tests.
public protocol ConntrackTable: Sendable {
    /// Calls `body` with every entry of both families, one at a time: a table of 100,000s of
    /// entries is never held whole.
    func scan(_ body: (ConntrackEntry) -> Void) throws
    /// Deletes the entries; ones already gone are skipped. Returns how many were deleted.
    func delete(_ entries: [ConntrackEntry]) throws -> Int
    /// This namespace's own addresses: a flow to one was delivered (input hook), from one was
    /// sent (output hook), anything else was routed (forward hook).
    func localAddresses() throws -> Set<LocalAddress>
}

/// A conntrack table in memory, for tests.
public final class InMemoryConntrack: ConntrackTable {
    private let store: Mutex<(entries: [ConntrackEntry], local: Set<LocalAddress>, scans: Int)>

    public init(_ entries: [ConntrackEntry] = [], local: Set<LocalAddress> = []) {
        store = Mutex((entries, local, 0))
    }

    /// The entries now held.
    public var entries: [ConntrackEntry] { store.withLock { $0.entries } }
    /// How many scans ran: tests check that unchanged policies cost none.
    public var scans: Int { store.withLock { $0.scans } }

    /// Adds an entry, as a new flow would.
    public func insert(_ e: ConntrackEntry) { store.withLock { $0.entries.append(e) } }

    public func scan(_ body: (ConntrackEntry) -> Void) throws {
        let all = store.withLock { s in s.scans += 1; return s.entries }
        all.forEach(body)
    }

    public func delete(_ entries: [ConntrackEntry]) throws -> Int {
        let gone = Set(entries)
        return store.withLock { s in
            let before = s.entries.count
            s.entries.removeAll { gone.contains($0) }
            return before - s.entries.count
        }
    }

    public func localAddresses() throws -> Set<LocalAddress> { store.withLock { $0.local } }
}
