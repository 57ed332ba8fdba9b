import Synchronization
#if canImport(Glibc)
import Glibc  // getpid only
#elseif canImport(Darwin)
import Darwin
#endif

/// A kernel that keeps one table in memory: for tests of everything above `Netfilter`.
///
/// Like knftables' fake, a transaction is applied to a copy that is kept only on success.
/// Errors can be injected for the next calls. Every commit (an `apply`, a `tamper`, a
/// `commitElsewhere`) bumps the generation and is announced to `events` subscribers, with
/// `pid` for `apply` and a foreign pid otherwise; `injectOverflow` simulates lost events.
public final class InMemoryKernel: KernelRuleset, @unchecked Sendable {
    /// An injected failure.
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var errno: Int32
        public var operation: String
        public init(errno: Int32, operation: String) {
            self.errno = errno
            self.operation = operation
        }
        public var description: String { "\(operation): errno \(errno)" }
    }

    private struct State {
        var table: Table?
        var generation: UInt32 = 1
        var failNextApply: [Failure] = []
        var failNextDump: [Failure] = []
        var applied: [Transaction] = []
        var dumps = 0
        var subscribers: [UInt64: Subscriber] = [:]
        var nextSubscriber: UInt64 = 0
    }

    private struct Subscriber {
        var family: Family
        var table: String
        var continuation: KernelEvents.Continuation
    }

    private let state = Mutex(State())

    /// The pid `apply` commits as: by default this process's, as the real kernel reports it.
    public let pid: UInt32
    /// The pid `tamper` and `commitElsewhere` commit as unless told otherwise: "someone else".
    public static let foreignPID: UInt32 = 4_194_304  // above any real pid_max
    /// The process name reported with `apply`'s events.
    public let processName: String?

    public init(table: Table? = nil, pid: UInt32 = UInt32(getpid()), processName: String? = "zonewall") {
        self.pid = pid
        self.processName = processName
        state.withLock { $0.table = table }
    }

    /// The table as held now.
    public var table: Table? { state.withLock { $0.table } }
    /// The current generation; never fails.
    public func generation() -> UInt32 { state.withLock { $0.generation } }
    /// How many times the table was dumped (`dump`, `dumpSkeleton`).
    public var dumpCount: Int { state.withLock { $0.dumps } }
    /// Every transaction that was committed, in order.
    public var appliedTransactions: [Transaction] { state.withLock { $0.applied } }

    /// Makes the next `apply` calls fail with these errors, one per call.
    public func failNextApply(_ f: Failure...) { state.withLock { $0.failNextApply += f } }
    public func failNextDump(_ f: Failure...) { state.withLock { $0.failNextDump += f } }

    /// Simulates someone else changing the table (bumps the generation and announces it
    /// with `pid`, e.g. 0 for the kernel itself).
    /// With `onlyElementsOf`, the event says the commit changed only elements of those sets,
    /// as the real kernel's notifications show for `nft add/delete element`.
    public func tamper(pid: UInt32 = InMemoryKernel.foreignPID, processName: String? = "nft",
                       onlyElementsOf: Set<String>? = nil, _ body: (inout Table?) -> Void) {
        state.withLock {
            body(&$0.table)
            Self.commit(&$0, pid: pid, processName: processName, onlyElementsOf: onlyElementsOf) { _ in true }
        }
    }

    /// Simulates someone else committing a transaction that does not touch the table
    /// (`nft add table inet other`): the generation moves, the table does not.
    public func commitElsewhere(pid: UInt32 = InMemoryKernel.foreignPID, processName: String? = "nft") {
        state.withLock { Self.commit(&$0, pid: pid, processName: processName) { _ in false } }
    }

    /// Tells every subscriber that events were lost, as `ENOBUFS` on the real socket does.
    public func injectOverflow() {
        state.withLock { s in for sub in s.subscribers.values { sub.continuation.yield(.overflow) } }
    }

    /// How many subscriptions are still open: lets tests check that they end.
    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Subscribes to commits on `inet zonewall`.
    public func events() -> KernelEvents { events(family: .inet, table: "zonewall") }

    /// Subscribes to commits; `touchedTable` is true for commits on `family`/`table`.
    public func events(family: Family, table: String) -> KernelEvents {
        let (events, continuation) = KernelEvents.makeEvents()
        let id = state.withLock { s in
            defer { s.nextSubscriber += 1 }
            s.subscribers[s.nextSubscriber] = Subscriber(family: family, table: table, continuation: continuation)
            return s.nextSubscriber
        }
        continuation.onTermination { [weak self] in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return events
    }

    /// Bumps the generation and announces the commit; `touches` says whether it concerned
    /// a subscriber's table.
    private static func commit(_ s: inout State, pid: UInt32, processName: String?, onlyElementsOf: Set<String>? = nil,
                               touches: (Subscriber) -> Bool) {
        s.generation &+= 1
        for sub in s.subscribers.values {
            let touched = touches(sub)
            sub.continuation.yield(.changed(generation: s.generation, pid: pid, processName: processName, touchedTable: touched,
                                            onlyElementsOf: touched ? onlyElementsOf : nil))
        }
    }

    public func dump(family: Family, table name: String) throws -> KernelSnapshot {
        try state.withLock {
            $0.dumps += 1
            if !$0.failNextDump.isEmpty { throw $0.failNextDump.removeFirst() }
            let t = $0.table.flatMap { $0.family == family && $0.name == name ? $0 : nil }
            return KernelSnapshot(table: t, generation: $0.generation)
        }
    }

    public func dumpSkeleton(family: Family, table name: String) throws -> KernelSnapshot {
        var snapshot = try dump(family: family, table: name)
        snapshot.table = snapshot.table?.skeleton
        return snapshot
    }

    public func elements(of sets: [NamedSet], family: Family, table name: String) throws -> [NamedSet] {
        try state.withLock { s in
            guard let t = s.table, t.family == family, t.name == name else { throw Failure(errno: 2, operation: "reading table \(name)") }
            return try sets.map { wanted in
                guard let found = t.set(named: wanted.name) else { throw Failure(errno: 2, operation: "reading elements of set \(wanted.name)") }
                var out = wanted.declaration
                out.elements = found.elements
                return out
            }
        }
    }

    public func apply(_ tx: Transaction, expectingGeneration generation: UInt32?) throws {
        try state.withLock {
            if !$0.failNextApply.isEmpty { throw $0.failNextApply.removeFirst() }
            if let generation, generation != $0.generation {
                throw Failure(errno: 85 /* ERESTART */, operation: "commit at generation \(generation)")
            }
            let table = try Self.run(tx, on: $0.table)
            $0.table = table
            $0.applied.append(tx)
            // Like the kernel, an empty batch commits nothing and announces nothing.
            guard !tx.changes.isEmpty else { return }
            Self.commit(&$0, pid: pid, processName: processName) { $0.family == tx.family && $0.table == tx.table }
        }
    }

    public func check(_ tx: Transaction) throws {
        try state.withLock {
            if !$0.failNextApply.isEmpty { throw $0.failNextApply.removeFirst() }
            _ = try Self.run(tx, on: $0.table)
        }
    }

    /// Applies the changes to a copy; throws like the kernel would on a missing or existing object.
    static func run(_ tx: Transaction, on start: Table?) throws -> Table? {
        var table = start
        func fail(_ errno: Int32, _ what: String) -> Failure { Failure(errno: errno, operation: what) }
        for (index, c) in tx.changes.enumerated() {
            switch c {
            case .addTable:
                if table == nil {
                    table = Table(family: tx.family, name: tx.table, flags: tx.tableFlags, userData: tx.tableUserData)
                } else if !tx.onlyEnsuresTable(at: index) {
                    // As the kernel does: an existing table takes the dormant flag it is sent.
                    table!.flags = table!.flags.subtracting(.dormant).union(tx.tableFlags.intersection(.dormant))
                }
            case .deleteTable:
                guard table != nil else { throw fail(2, "deleting table \(tx.table)") }
                table = nil
            case .addSet(let s):
                guard table != nil else { throw fail(2, "adding set \(s.name)") }
                guard table!.set(named: s.name) == nil else { throw fail(17, "adding set \(s.name)") }
                table!.sets.append(s.declaration)
            case .addChain(let ch):
                guard table != nil else { throw fail(2, "adding chain \(ch.name)") }
                guard table!.chain(named: ch.name) == nil else { throw fail(17, "adding chain \(ch.name)") }
                table!.chains.append(ch)
            case .addRule(let chain, let r):
                guard let i = table?.chains.firstIndex(where: { $0.name == chain }) else { throw fail(2, "adding rule to chain \(chain)") }
                table!.chains[i].rules.append(r)
            case .addElements(let name, let elems):
                guard let i = table?.sets.firstIndex(where: { $0.name == name }) else { throw fail(2, "adding elements to set \(name)") }
                var current = Set(table!.sets[i].elements)
                for e in elems {
                    guard !current.contains(e) else { throw fail(17, "adding element to set \(name)") }
                    current.insert(e)
                }
                table!.sets[i].elements = ElementList(current.sorted())
            case .deleteElements(let name, let elems):
                guard let i = table?.sets.firstIndex(where: { $0.name == name }) else { throw fail(2, "deleting elements from set \(name)") }
                var current = Set(table!.sets[i].elements)
                for e in elems {
                    guard current.remove(e) != nil else { throw fail(2, "deleting element from set \(name)") }
                }
                table!.sets[i].elements = ElementList(current.sorted())
            }
        }
        return table
    }
}
