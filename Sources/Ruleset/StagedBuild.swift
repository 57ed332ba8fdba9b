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
    /// `budget` elements and objects. A set's elements may span stages. The order, each object
    /// after all it refers to:
    /// 1. the plain sets, with their elements;
    /// 2. the regular chains, empty, so that every map element and rule can jump to any of them;
    /// 3. the verdict maps with their elements, the largest first;
    /// 4. the regular chains' rules;
    /// 5. the base chains and their rules, in the last stage, so nothing filters before it.
    ///
    /// Every set is complete before the rules come, and in a build of several stages the rules
    /// start a stage of their own: the sets of a staged build are read back while later stages
    /// commit (`StageVerifier`), and the stages that add only rules leave the reader time to
    /// finish the last sets before the build is done. The kernel keeps a table's sets in a list, in
    /// the order they were made, and walks it for every message that names a set: a large map
    /// made early is cheaper to fill and to read than one made last.
    public static func stages(creating desired: Table, budget: Int) -> [Stage] {
        precondition(budget > 0, "a stage holds at least one object")
        var stages: [Stage] = []
        var current = Transaction(family: desired.family, table: desired.name, changes: [.addTable],
                                  tableFlags: desired.flags, tableUserData: desired.userData)
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
        func add(_ change: Change) {
            if used > 0 && used + 1 > budget { flush() }
            current.changes.append(change)
            used += 1
        }
        func add(_ s: NamedSet) {
            add(.addSet(s.declaration))
            declaredHere.insert(s.name)
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
        }

        var maps: [NamedSet] = []
        var regular: [Chain] = []
        for item in desired.declarationOrder {
            switch item {
            case .set(let s) where s.dataType == .verdict: maps.append(s)
            case .set(let s): add(s)
            case .chain(let c) where c.base == nil: regular.append(c)
            case .chain: break
            }
        }
        for c in regular {
            var declaration = c
            declaration.rules = []
            add(.addChain(declaration))
        }
        // Stable: maps of one size keep their declaration order.
        let bySize = maps.indices.sorted { (maps[$0].elements.count, $1) > (maps[$1].elements.count, $0) }
        for i in bySize { add(maps[i]) }
        // In a build of several stages, the rules start one: the last sets are then read back
        // while it commits, rather than after.
        if !stages.isEmpty && used > 0 { flush() }
        for c in regular {
            for rule in c.rules { add(.addRule(chain: c.name, rule)) }
        }
        for c in desired.chains where c.base != nil {
            var declaration = c
            declaration.rules = []
            current.changes.append(.addChain(declaration))
            current.changes += c.rules.map { .addRule(chain: c.name, $0) }
        }
        flush()
        return stages
    }
}

/// A staged build stopped because someone else changed the table it was building: like
/// `ERESTART`, the caller reads the ruleset again and starts over.
public struct BuildInterrupted: KernelFailure {
    public var errno: Int32 { 85 }  // ERESTART
    public var description: String {
        "building the table in stages: someone else changed it in between"
    }
}

/// What `KernelRuleset.build` did.
public struct BuildResult: Sendable, Hashable {
    /// The generation after the last stage.
    public var generation: UInt32
    /// Whether others committed during the build. The build went on because the table's
    /// skeleton was still exactly what the stages so far had made, but a commit may have
    /// changed elements in it: whatever was read back before it must be read again.
    public var sawForeignCommits: Bool
}

extension Transaction {
    /// The skeleton (declarations, chains and rules, no elements) that `stages` leave when
    /// committed one after the other from nothing.
    static func skeleton(after stages: some Sequence<Stage>, family: Family, table: String) -> Table {
        var t = Table(family: family, name: table)
        var chainIndex: [String: Int] = [:]
        for stage in stages {
            if stage.transaction.changes.first == .addTable {
                t.flags = stage.transaction.tableFlags
                t.userData = stage.transaction.tableUserData
            }
            for change in stage.transaction.changes {
                switch change {
                case .addSet(let s): t.sets.append(s.declaration)
                case .addChain(let c):
                    chainIndex[c.name] = t.chains.count
                    t.chains.append(c)
                case .addRule(let chain, let rule):
                    if let i = chainIndex[chain] { t.chains[i].rules.append(rule) }
                case .addTable, .deleteTable, .addElements, .deleteElements: break
                }
            }
        }
        return t
    }
}

extension KernelRuleset {
    /// Commits `stages` (from `Transaction.stages(creating:budget:)`) one after the other, where
    /// no table existed at `generation`.
    ///
    /// Each stage is pinned to the generation the previous commit left, and that generation is
    /// read back after each commit. When someone else commits in between (on a busy host,
    /// often in another table), the build reads the table's skeleton: if it is still exactly
    /// what the stages so far made, the build goes on from the new generation and says so
    /// (`BuildResult.sawForeignCommits`); otherwise it stops with `BuildInterrupted`.
    ///
    /// On any failure the stages already committed are removed, so the kernel holds no table,
    /// as before, and the error is rethrown. The removal is pinned too: a table that someone
    /// else completed meanwhile is left alone. `afterStage` runs after each commit with the
    /// stage's index and the new generation (an error it throws stops the build the same way).
    @discardableResult
    public func build(_ stages: [Stage], from generation: UInt32,
                      afterStage: (Int, UInt32) throws -> Void = { _, _ in }) throws -> BuildResult {
        guard let first = stages.first?.transaction else { return BuildResult(generation: generation, sawForeignCommits: false) }
        let (family, table) = (first.family, first.table)
        var current = generation
        var committed = 0
        var foreign = 0
        let maxForeign = 100  // commits by others to sit out before giving up

        /// The generation at which the table is still what the first `committed` stages made.
        func resume() throws -> UInt32 {
            foreign += 1
            guard foreign <= maxForeign else { throw BuildInterrupted() }
            let snapshot = try dumpSkeleton(family: family, table: table)
            let expected = committed == 0 ? nil : Transaction.skeleton(after: stages.prefix(committed), family: family, table: table)
            switch (snapshot.table, expected) {
            case (nil, nil): return snapshot.generation
            case (let have?, let want?) where have.hasSkeleton(of: want): return snapshot.generation
            default: throw BuildInterrupted()
            }
        }

        do {
            var k = 0
            while k < stages.count {
                do {
                    try apply(stages[k].transaction, expectingGeneration: current)
                } catch let e as any KernelFailure where e.isGenerationMismatch {
                    current = try resume()
                    continue  // the same stage again, pinned to the new generation
                }
                committed = k + 1
                let now = try self.generation()
                current = now == Ruleset.generation(after: current) ? now : try resume()
                try afterStage(k, current)
                k += 1
            }
            return BuildResult(generation: current, sawForeignCommits: foreign > 0)
        } catch {
            if committed > 0 { removePartialBuild(of: stages.prefix(committed), at: current, family: family, table: table) }
            throw error
        }
    }

    /// Deletes the table the given stages built, pinned to `generation`; when the ruleset moved,
    /// only if the table is still that partial build (no hooks, nothing else), not a table
    /// someone else completed meanwhile.
    private func removePartialBuild(of stages: ArraySlice<Stage>, at generation: UInt32, family: Family, table: String) {
        let delete = Transaction(family: family, table: table, changes: [.addTable, .deleteTable])
        var pin = generation
        for _ in 0..<3 {
            do {
                try apply(delete, expectingGeneration: pin)
                return
            } catch let e as any KernelFailure where e.isGenerationMismatch {
                guard let snapshot = try? dumpSkeleton(family: family, table: table), let have = snapshot.table,
                      have.hasSkeleton(of: Transaction.skeleton(after: stages, family: family, table: table)) else { return }
                pin = snapshot.generation
            } catch {
                return
            }
        }
    }
}
