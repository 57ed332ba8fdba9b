/// Building a table where none exists, in several transactions.
///
/// One transaction for a large table is one netlink batch of tens of MB, built in memory at
/// once. Where no table exists nothing depends on atomicity across the whole build: only base
/// chains see packets, and they come in the last stage, once everything they lead to is in
/// place. Until that stage commits the table is inert, so traffic sees exactly one change, as
/// with a single transaction. If a stage fails, what the earlier ones built is removed again.
public struct Stage: Sendable, Hashable {
    public var transaction: Transaction
    /// Sets complete once this stage is committed: declared, and no later stage adds to them.
    public var completedSets: [String]

    public init(transaction: Transaction, completedSets: [String]) {
        self.transaction = transaction
        self.completedSets = completedSets
    }
}

extension Transaction {
    /// The transactions that create `desired` where no table exists, each with at most about
    /// `budget` elements and objects. A set's elements may span stages. The base chains and
    /// their rules come in the last stage; every other object comes in declaration order, so
    /// each stage refers only to objects of its own or earlier stages.
    public static func stages(creating desired: Table, budget: Int) -> [Stage] {
        precondition(budget > 0, "a stage holds at least one object")
        var stages: [Stage] = []
        var current = Transaction(family: desired.family, table: desired.name, changes: [.addTable])
        var completed: [String] = []
        var declaredHere = Set<String>()
        var used = 0
        func flush() {
            stages.append(Stage(transaction: current, completedSets: completed))
            current = Transaction(family: desired.family, table: desired.name)
            completed = []
            declaredHere = []
            used = 0
        }
        var hooks: [Change] = []
        for item in desired.declarationOrder {
            switch item {
            case .set(let s):
                if used + 1 > budget { flush() }
                current.changes.append(.addSet(s.declaration))
                declaredHere.insert(s.name)
                used += 1
                var i = 0
                while i < s.elements.count {
                    if used >= budget { flush() }
                    let n = min(budget - used, s.elements.count - i)
                    if !declaredHere.contains(s.name) { current.setDeclarations[s.name] = s.declaration }
                    current.changes.append(.addElements(set: s.name, s.elements.elements(i ..< i + n)))
                    used += n
                    i += n
                }
                completed.append(s.name)
            case .chain(let c):
                var declaration = c
                declaration.rules = []
                let changes = [Change.addChain(declaration)] + c.rules.map { .addRule(chain: c.name, $0) }
                if c.base != nil {
                    hooks += changes
                } else {
                    if used > 0 && used + changes.count > budget { flush() }
                    current.changes += changes
                    used += changes.count
                }
            }
        }
        current.changes += hooks
        flush()
        return stages
    }
}

/// A staged build stopped because someone else committed between two of its stages: like
/// `ERESTART`, the caller reads the ruleset again and starts over.
public struct BuildInterrupted: KernelFailure {
    public var errno: Int32 { 85 }  // ERESTART
    public var expected: UInt32
    public var found: UInt32
    public var description: String {
        "building the table in stages: the ruleset generation is \(found), not \(expected): someone else committed in between"
    }
}

extension KernelRuleset {
    /// Commits `stages` (from `Transaction.stages(creating:budget:)`) one after the other, where
    /// no table existed at `generation`.
    ///
    /// Each stage is pinned to the generation the previous commit left, and that generation is
    /// read back after each commit, so any other commit in between stops the build
    /// (`BuildInterrupted` or the kernel's `ERESTART`, both generation mismatches). On any
    /// failure the stages already committed are removed, so the kernel holds no table, as
    /// before, and the error is rethrown. `afterStage` runs after each commit with the stage's
    /// index and the new generation (an error it throws stops the build the same way).
    ///
    /// - Returns: the generation after the last stage.
    @discardableResult
    public func build(_ stages: [Stage], from generation: UInt32,
                      afterStage: (Int, UInt32) throws -> Void = { _, _ in }) throws -> UInt32 {
        var current = generation
        var committed = false
        do {
            for (k, stage) in stages.enumerated() {
                try apply(stage.transaction, expectingGeneration: current)
                committed = true
                let now = try self.generation()
                // Each commit moves the generation by one (the kernel skips 0 when it wraps).
                let expected = current &+ 1 == 0 ? 1 : current &+ 1
                guard now == expected else { throw BuildInterrupted(expected: expected, found: now) }
                current = now
                try afterStage(k, current)
            }
            return current
        } catch {
            if committed, let first = stages.first?.transaction {
                try? apply(Transaction(family: first.family, table: first.table, changes: [.addTable, .deleteTable]),
                           expectingGeneration: nil)
            }
            throw error
        }
    }
}
