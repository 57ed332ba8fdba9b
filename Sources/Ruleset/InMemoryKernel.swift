import Synchronization

/// A kernel that keeps one table in memory: for tests of everything above `Netfilter`.
///
/// Like knftables' fake, a transaction is applied to a copy that is kept only on success.
/// Errors can be injected for the next calls.
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
    }

    private let state = Mutex(State())

    public init(table: Table? = nil) {
        state.withLock { $0.table = table }
    }

    /// The table as held now.
    public var table: Table? { state.withLock { $0.table } }
    public var generation: UInt32 { state.withLock { $0.generation } }
    /// Every transaction that was committed, in order.
    public var appliedTransactions: [Transaction] { state.withLock { $0.applied } }

    /// Makes the next `apply` calls fail with these errors, one per call.
    public func failNextApply(_ f: Failure...) { state.withLock { $0.failNextApply += f } }
    public func failNextDump(_ f: Failure...) { state.withLock { $0.failNextDump += f } }

    /// Simulates someone else changing the ruleset (bumps the generation).
    public func tamper(_ body: (inout Table?) -> Void) {
        state.withLock {
            body(&$0.table)
            $0.generation &+= 1
        }
    }

    public func dump(family: Family, table name: String) throws -> KernelSnapshot {
        try state.withLock {
            if !$0.failNextDump.isEmpty { throw $0.failNextDump.removeFirst() }
            let t = $0.table.flatMap { $0.family == family && $0.name == name ? $0 : nil }
            return KernelSnapshot(table: t, generation: $0.generation)
        }
    }

    public func apply(_ tx: Transaction, expectingGeneration generation: UInt32?) throws {
        try state.withLock {
            if !$0.failNextApply.isEmpty { throw $0.failNextApply.removeFirst() }
            if let generation, generation != $0.generation {
                throw Failure(errno: 85 /* ERESTART */, operation: "commit at generation \(generation)")
            }
            $0.table = try Self.run(tx, on: $0.table)
            $0.generation &+= 1
            $0.applied.append(tx)
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
        for c in tx.changes {
            switch c {
            case .addTable:
                if table == nil { table = Table(family: tx.family, name: tx.table) }
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
                table!.sets[i].elements = current.sorted()
            case .deleteElements(let name, let elems):
                guard let i = table?.sets.firstIndex(where: { $0.name == name }) else { throw fail(2, "deleting elements from set \(name)") }
                var current = Set(table!.sets[i].elements)
                for e in elems {
                    guard current.remove(e) != nil else { throw fail(2, "deleting element from set \(name)") }
                }
                table!.sets[i].elements = current.sorted()
            }
        }
        return table
    }
}
