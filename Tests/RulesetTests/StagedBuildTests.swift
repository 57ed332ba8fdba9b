import Testing
@testable import Ruleset

/// `Transaction.stages(creating:budget:)` and `KernelRuleset.build`: creating a table from
/// nothing in several transactions, hooks last, removed again on failure.
struct StagedBuildTests {
    /// A table shaped like a compiled policy: plain sets of several sizes, a regular chain per
    /// set, a verdict map jumping to those chains, and two base chains using both.
    static func table(sizes: [Int]) -> Table {
        var t = Table(family: .inet, name: "zonewall")
        var next: UInt64 = 0xC000_0200  // 192.0.2.0 onwards, one address per element
        var jumps: [SetElement] = []
        for (k, n) in sizes.enumerated() {
            let elements = (0..<n).map { _ -> SetElement in
                defer { next += 1 }
                return SetElement(key: [ValueRange(Value(next, width: 4)), ValueRange(Value(443, width: 2))])
            }
            t.sets.append(NamedSet(name: "z\(k)_v4", keyType: [.ipv4Address, .inetService], flags: .interval, elements: elements))
            t.chains.append(Chain(name: "z\(k)", rules: [Rule([.lookup([.ipDaddr, .thDport], set: "z\(k)_v4", negated: false), .verdict(.accept)])]))
            jumps.append(SetElement(key: [ValueRange(Value(0xCB00_7100 + UInt64(k), width: 4))], data: .verdict(.jump("z\(k)"))))
        }
        t.sets.append(NamedSet(name: "src_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: jumps))
        for hook in [Hook.forward, .input] {
            t.chains.append(Chain(name: "\(hook)", base: BaseChain(type: .filter, hook: hook, priority: 0, policy: .accept),
                                  rules: [Rule([.verdictMap([.ipSaddr], map: "src_v4")]), Rule([.verdict(.drop)])]))
        }
        return t
    }

    static let sizes = [0, 3, 250, 7, 1, 120, 0, 64]

    @Test func stagesRebuildTheTableWithinBudgetAndHookLast() throws {
        let desired = Self.table(sizes: Self.sizes)
        for budget in [1, 7, 50, 100, 10_000] {
            let stages = Transaction.stages(creating: desired, budget: budget)
            // Applied one after the other from nothing, they give the table.
            var table: Table? = nil
            for stage in stages { table = try InMemoryKernel.run(stage.transaction, on: table) }
            #expect(table.map { $0.isEquivalent(to: desired) } == true, "budget \(budget)")

            for (k, stage) in stages.enumerated() {
                // Objects plus elements stay within the budget; a chain travels with its rules
                // (here one each), so it may exceed a budget of 1 alone.
                let size = stage.transaction.changes.reduce(0) { n, c in
                    switch c {
                    case .addElements(_, let e): n + e.count
                    case .addTable: n
                    default: n + 1
                    }
                }
                let hooks = stage.transaction.changes.filter {
                    if case .addChain(let c) = $0 { return c.base != nil }
                    if case .addRule(let chain, _) = $0 { return chain == "forward" || chain == "input" }
                    return false
                }.count
                #expect(size - hooks <= max(budget, 2), "budget \(budget), stage \(k): \(size) objects and elements")
                // Only the last stage adds base chains (and their rules): nothing filters before it.
                #expect((hooks > 0) == (k == stages.count - 1), "budget \(budget), stage \(k)")
                // A stage that adds elements to a set declared earlier carries its declaration.
                var declared = Set<String>()
                for c in stage.transaction.changes {
                    if case .addSet(let s) = c { declared.insert(s.name) }
                    if case .addElements(let name, _) = c, !declared.contains(name) {
                        #expect(stage.transaction.setDeclarations[name] == desired.set(named: name)?.declaration)
                    }
                }
            }
            // Each set is completed exactly once, by the stage with its last elements.
            let completed = stages.flatMap(\.completedSets)
            #expect(completed.sorted() == desired.sets.map(\.name).sorted(), "budget \(budget)")
            for (k, stage) in stages.enumerated() {
                for name in stage.completedSets {
                    let later = stages[(k + 1)...].contains { $0.transaction.changes.contains {
                        if case .addElements(name, _) = $0 { return true }
                        return false
                    } }
                    #expect(!later, "set \(name) completed in stage \(k) but filled later (budget \(budget))")
                }
            }
        }
        // A large budget gives one stage, the whole table.
        #expect(Transaction.stages(creating: desired, budget: 1_000_000).count == 1)
        #expect(Transaction.stages(creating: desired, budget: 50).count > 5)
    }

    /// A plan makes a stage when it is asked for (`StagePlan`), the same each time, and counts
    /// the changes of all stages without making them. A chain's rules that a stage boundary
    /// splits stay in order.
    @Test func aPlanMakesEachStageWhenAskedTheSameEachTime() throws {
        var desired = Self.table(sizes: Self.sizes)
        let many = Chain(name: "many", rules: (0..<23).map {
            Rule([.match(.thDport, .equal(Value(UInt64(1000 + $0), width: 2))), .verdict(.accept)])
        })
        desired.chains.insert(many, at: 0)
        for budget in [1, 5, 7, 50, 10_000] {
            let plan = StagePlan(creating: desired, budget: budget)
            let stages = Array(plan)
            #expect(stages == Array(plan), "budget \(budget)")
            #expect(stages == Transaction.stages(creating: desired, budget: budget))
            let counted = stages.reduce(0) {
                $0 + $1.transaction.changes.reduce(0) { n, c in
                    if case .addElements(_, let e) = c { n + e.count } else { n + 1 }
                }
            }
            #expect(plan.changeCount == counted, "budget \(budget)")
            var table: Table? = nil
            for stage in plan { table = try InMemoryKernel.run(stage.transaction, on: table) }
            #expect(table.map { $0.isEquivalent(to: desired) } == true, "budget \(budget)")
            #expect(table?.chains.first { $0.name == "many" }?.rules == many.rules, "budget \(budget)")
            let holding = stages.filter { $0.transaction.changes.contains { if case .addRule("many", _) = $0 { true } else { false } } }
            if budget <= 7 { #expect(holding.count > 1, "budget \(budget): the chain's 23 rules fit one stage") }
        }
    }

    /// Every set is complete before the first rule, which starts a stage: the sets are read
    /// back while the stages that only add rules commit. The verdict maps come after the (empty) regular chains they
    /// jump to, the largest first: the kernel walks its list of sets, in the order they were
    /// made, for every message that names one.
    @Test func setsAreCompleteBeforeTheRulesAndLargeMapsComeFirst() throws {
        let desired = Self.table(sizes: Self.sizes)
        for budget in [1, 7, 50, 100, 10_000] {
            let stages = Transaction.stages(creating: desired, budget: budget)
            let changes = stages.flatMap(\.transaction.changes)
            // In a build of several stages the rules start a stage: the last sets are read back
            // while it commits.
            if stages.count > 1 {
                let k = try #require(stages.firstIndex { $0.transaction.changes.contains { if case .addRule = $0 { true } else { false } } })
                let first = try #require(stages[k].transaction.changes.first)
                #expect({ if case .addRule = first { true } else { false } }(), "budget \(budget): stage \(k) starts with \(first)")
            }
            let firstRule = try #require(changes.firstIndex { if case .addRule = $0 { true } else { false } })
            let lastSetChange = try #require(changes.lastIndex {
                switch $0 {
                case .addSet, .addElements: true
                default: false
                }
            })
            #expect(lastSetChange < firstRule, "budget \(budget)")
            // Chains are made without their rules, all of them before the first verdict map.
            let chainsAt = changes.indices.filter { if case .addChain(let c) = changes[$0] { c.base == nil } else { false } }
            let mapsAt = changes.indices.filter { if case .addSet(let s) = changes[$0] { s.dataType == .verdict } else { false } }
            #expect(chainsAt.count == desired.chains.filter { $0.base == nil }.count)
            #expect(chainsAt.allSatisfy { i in mapsAt.allSatisfy { i < $0 } }, "budget \(budget)")
            for i in chainsAt { if case .addChain(let c) = changes[i] { #expect(c.rules.isEmpty) } }
            let mapSizes = mapsAt.compactMap { i -> Int? in
                guard case .addSet(let s) = changes[i] else { return nil }
                return desired.set(named: s.name)?.elements.count
            }
            #expect(mapSizes == mapSizes.sorted(by: >), "budget \(budget)")
        }
        // The maps here: the source map (8 jumps) and none other; add a larger one to see the order.
        var t = Self.table(sizes: Self.sizes)
        let jumps = (0..<20).map { k in
            SetElement(key: [ValueRange(Value(0xC633_6400 + UInt64(k), width: 4))], data: .verdict(.jump("z\(k % 8)")))
        }
        t.sets.append(NamedSet(name: "dst_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: jumps))
        let order = Transaction.stages(creating: t, budget: 10_000)[0].transaction.changes.compactMap { c -> String? in
            if case .addSet(let s) = c, s.dataType == .verdict { s.name } else { nil }
        }
        #expect(order == ["dst_v4", "src_v4"])
        var table: Table? = nil
        for stage in Transaction.stages(creating: t, budget: 9) { table = try InMemoryKernel.run(stage.transaction, on: table) }
        #expect(table?.isEquivalent(to: t) == true)
    }

    @Test func buildCommitsEachStagePinnedToThePreviousGeneration() throws {
        let desired = Self.table(sizes: Self.sizes)
        let kernel = InMemoryKernel()
        let start = kernel.generation()
        let stages = Transaction.stages(creating: desired, budget: 60)
        var seen: [UInt32] = []
        let final = try kernel.build(stages, from: start) { k, generation in
            #expect(k == seen.count)
            seen.append(generation)
        }
        #expect(kernel.table.map { $0.isEquivalent(to: desired) } == true)
        #expect(seen == (1...UInt32(stages.count)).map { start + $0 })
        #expect(final.generation == kernel.generation())
        #expect(!final.sawForeignCommits)
        #expect(kernel.appliedTransactions == stages.map(\.transaction))
    }

    @Test func aFailedStageRemovesWhatTheEarlierOnesBuilt() throws {
        let desired = Self.table(sizes: Self.sizes)
        let stages = Transaction.stages(creating: desired, budget: 60)
        try #require(stages.count >= 3)

        // The kernel refuses the third stage.
        let kernel = InMemoryKernel()
        var calls = 0
        let refused = InMemoryKernel.Failure(errno: 22, operation: "adding rule")
        #expect(throws: refused) {
            try kernel.build(stages, from: kernel.generation()) { k, _ in
                calls += 1
                if k == 1 { kernel.failNextApply(refused) }
            }
        }
        #expect(calls == 2)
        #expect(kernel.table == nil)

        // Someone else changes the table in the making (a chain added): the build stops, and the
        // table, no longer only ours, is left for the caller to replace.
        let raced = InMemoryKernel()
        let error = #expect(throws: BuildInterrupted.self) {
            try raced.build(stages, from: raced.generation()) { k, _ in
                if k == 0 { raced.tamper { $0!.chains.append(Chain(name: "theirs")) } }
            }
        }
        #expect(error?.isGenerationMismatch == true)
        #expect(raced.table?.chain(named: "theirs") != nil)

        // A first stage that fails leaves nothing to remove: nothing else is sent.
        let first = InMemoryKernel()
        first.failNextApply(refused)
        #expect(throws: refused) { try first.build(stages, from: first.generation()) }
        #expect(first.appliedTransactions.isEmpty)
        #expect(first.table == nil)
    }

    /// On a busy host others commit all the time, mostly elsewhere: the build sits them out as
    /// long as its own table is untouched, and says so.
    @Test func commitsElsewhereDoNotStopTheBuild() throws {
        let desired = Self.table(sizes: Self.sizes)
        let stages = Transaction.stages(creating: desired, budget: 60)
        let kernel = InMemoryKernel()
        let result = try kernel.build(stages, from: kernel.generation()) { k, _ in
            guard k < stages.count - 1 else { return }  // between stages only
            kernel.commitElsewhere()
            if k == 1 { kernel.commitElsewhere() }
        }
        #expect(result.sawForeignCommits)
        #expect(result.generation == kernel.generation())
        #expect(kernel.table?.isEquivalent(to: desired) == true)
        #expect(kernel.appliedTransactions == stages.map(\.transaction))

        // Elements changed in the table in the making do not stop it either (the skeleton is
        // intact), but the result says that what was read before may be stale.
        let tampered = InMemoryKernel()
        let victim = try #require(desired.sets.first { $0.elements.count > 1 }?.name)
        let r = try tampered.build(stages, from: tampered.generation()) { k, _ in
            guard k == stages.count - 2 else { return }
            tampered.tamper(onlyElementsOf: [victim]) { t in
                let i = t!.sets.firstIndex { $0.name == victim }!
                t!.sets[i].elements = ElementList(t!.sets[i].elements.dropFirst())
            }
        }
        #expect(r.sawForeignCommits)
        #expect(tampered.table?.isEquivalent(to: desired) == false)

        // The skeleton of the stages so far is what the kernel must hold between stages.
        var partial: Table? = nil
        for (k, stage) in stages.enumerated() {
            partial = try InMemoryKernel.run(stage.transaction, on: partial)
            #expect(Transaction.skeleton(after: stages.prefix(k + 1), family: .inet, table: "zonewall").isEquivalent(to: partial!.skeleton))
        }
    }

    @Test func elementRangesCopyTheirSlice() {
        let list = ElementList(Self.table(sizes: [10]).sets[0].elements)
        #expect(Array(list.elements(2..<5)) == Array(list)[2..<5].map { $0 })
        #expect(list.elements(0..<10) == list)
        #expect(list.elements(4..<4).isEmpty)
    }
}
