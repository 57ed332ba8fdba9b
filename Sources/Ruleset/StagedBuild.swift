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
    /// `budget` elements and objects (`StagePlan`), all made at once.
    public static func stages(creating desired: Table, budget: Int) -> [Stage] {
        Array(StagePlan(creating: desired, budget: budget))
    }
}

/// The stages that create a table where none exists, each with at most about `budget` elements
/// and objects, planned at once but made one at a time: a stage's transaction exists while it is
/// committed, not for the whole build. At 10,000 zones the stages of a table held together were
/// 12 MB of changes beside the table they came from; the plan is a list of steps into it.
///
/// A set's elements may span stages. The order, each object after all it refers to:
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
public struct StagePlan: RandomAccessCollection, Sendable {
    /// The table the stages create.
    public let desired: Table
    /// Each stage's steps, and the sets (indices into `desired.sets`) complete once it commits.
    private let plans: [(steps: [Step], completed: [Int32])]

    /// One change, or a run of them, by index into `desired`.
    private enum Step: Sendable {
        case addTable
        /// The set's declaration (`addSet`).
        case declare(set: Int32)
        /// `addElements` of these elements of the set.
        case elements(set: Int32, Range<Int>)
        /// A regular chain, without its rules.
        case emptyChain(Int32)
        /// `addRule` of each of these rules of a regular chain.
        case rules(chain: Int32, Range<Int>)
        /// A base chain, then each of its rules.
        case baseChain(Int32)
    }

    public init(creating desired: Table, budget: Int) {
        precondition(budget > 0, "a stage holds at least one object")
        self.desired = desired
        var plans: [(steps: [Step], completed: [Int32])] = []
        var steps: [Step] = [.addTable]
        var completed: [Int32] = []
        var used = 0
        func flush() {
            plans.append((steps, completed))
            steps = []
            completed = []
            used = 0
        }
        func add(_ step: Step) {
            if used > 0 && used + 1 > budget { flush() }
            steps.append(step)
            used += 1
        }
        func add(set i: Int32) {
            add(.declare(set: i))
            let count = desired.sets[Int(i)].elements.count
            var k = 0
            while k < count {
                if used >= budget { flush() }
                let n = Swift.min(budget - used, count - k)
                steps.append(.elements(set: i, k ..< k + n))
                used += n
                k += n
            }
            completed.append(i)
        }
        func addRule(of chain: Int32, _ j: Int) {
            if used > 0 && used + 1 > budget { flush() }
            if case .rules(chain, let r)? = steps.last, r.upperBound == j {
                steps[steps.count - 1] = .rules(chain: chain, r.lowerBound ..< j + 1)
            } else {
                steps.append(.rules(chain: chain, j ..< j + 1))
            }
            used += 1
        }

        let setIndex = Dictionary(desired.sets.indices.map { (desired.sets[$0].name, Int32($0)) }, uniquingKeysWith: { a, _ in a })
        let chainIndex = Dictionary(desired.chains.indices.map { (desired.chains[$0].name, Int32($0)) }, uniquingKeysWith: { a, _ in a })
        var maps: [Int32] = []
        var regular: [Int32] = []
        for item in desired.declarationOrder {
            switch item {
            case .set(let s) where s.dataType == .verdict: maps.append(setIndex[s.name]!)
            case .set(let s): add(set: setIndex[s.name]!)
            case .chain(let c) where c.base == nil: regular.append(chainIndex[c.name]!)
            case .chain: break
            }
        }
        for c in regular { add(.emptyChain(c)) }
        // Stable: maps of one size keep their declaration order.
        let size = { (i: Int32) in desired.sets[Int(i)].elements.count }
        for i in maps.indices.sorted(by: { (size(maps[$0]), $1) > (size(maps[$1]), $0) }) { add(set: maps[i]) }
        // In a build of several stages, the rules start one: the last sets are then read back
        // while it commits, rather than after.
        if !plans.isEmpty && used > 0 { flush() }
        for c in regular {
            for j in desired.chains[Int(c)].rules.indices { addRule(of: c, j) }
        }
        for c in desired.chains.indices where desired.chains[c].base != nil { steps.append(.baseChain(Int32(c))) }
        flush()
        self.plans = plans
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { plans.count }

    /// Stage `k`, made now.
    public subscript(k: Int) -> Stage {
        let t = desired
        var tx = Transaction(family: t.family, table: t.name)
        var declaredHere = Set<Int32>()
        for step in plans[k].steps {
            switch step {
            case .addTable:
                tx.changes.append(.addTable)
                tx.tableFlags = t.flags
                tx.tableUserData = t.userData
            case .declare(let i):
                tx.changes.append(.addSet(t.sets[Int(i)].declaration))
                declaredHere.insert(i)
            case .elements(let i, let range):
                let s = t.sets[Int(i)]
                if !declaredHere.contains(i) { tx.setDeclarations[s.name] = s.declaration }
                tx.changes.append(.addElements(set: s.name, s.elements.elements(range)))
            case .emptyChain(let c):
                var declaration = t.chains[Int(c)]
                declaration.rules = []
                tx.changes.append(.addChain(declaration))
            case .rules(let c, let range):
                let chain = t.chains[Int(c)]
                for j in range { tx.changes.append(.addRule(chain: chain.name, chain.rules[j])) }
            case .baseChain(let c):
                let chain = t.chains[Int(c)]
                var declaration = chain
                declaration.rules = []
                tx.changes.append(.addChain(declaration))
                tx.changes += chain.rules.map { .addRule(chain: chain.name, $0) }
            }
        }
        return Stage(transaction: tx, completedSets: plans[k].completed.map { t.sets[Int($0)].name })
    }

    /// The changes of all stages, elements counted one by one (`changeCount` of each stage's
    /// transaction, summed), without making them.
    public var changeCount: Int {
        plans.reduce(0) { total, plan in
            plan.steps.reduce(total) { n, step in
                switch step {
                case .addTable, .declare, .emptyChain: n + 1
                case .elements(_, let r), .rules(_, let r): n + r.count
                case .baseChain(let c): n + 1 + desired.chains[Int(c)].rules.count
                }
            }
        }
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
    public func build(_ stages: some Collection<Stage>, from generation: UInt32,
                      afterStage: (Int, UInt32) throws -> Void = { _, _ in }) throws -> BuildResult {
        guard !stages.isEmpty else { return BuildResult(generation: generation, sawForeignCommits: false) }
        // One stage's transaction at a time: a plan makes each when it is asked for, and a stage
        // tried again after a generation mismatch is the one already made.
        var stage = stages.startIndex
        var tx = stages[stage].transaction
        let (family, table) = (tx.family, tx.table)
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
            while true {
                do {
                    try apply(tx, expectingGeneration: current)
                } catch let e as any KernelFailure where e.isGenerationMismatch {
                    current = try resume()
                    continue  // the same stage again, pinned to the new generation
                }
                committed = k + 1
                let now = try self.generation()
                current = now == Ruleset.generation(after: current) ? now : try resume()
                try afterStage(k, current)
                k += 1
                stages.formIndex(after: &stage)
                guard stage != stages.endIndex else { break }
                tx = stages[stage].transaction
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
    private func removePartialBuild(of stages: some Sequence<Stage>, at generation: UInt32, family: Family, table: String) {
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
