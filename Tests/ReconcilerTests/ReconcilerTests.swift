import Foundation
import Logging
import Reconciler
import Revocation
import Ruleset
import Testing
import ZoneCompiler
import ZonePolicy

/// A policy directory in a temporary folder, edited by tests.
final class PolicyDir {
    let path: String

    init(_ files: [String: String]) throws {
        path = NSTemporaryDirectory() + "zw-reconciler-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, text) in files { try write(name, text) }
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8)
    }

    func compiled() throws -> Table {
        ZoneCompiler.compile(try #require(PolicyLoader.load(directory: path).policy))
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let basePolicy = """
    zones:
      web: {members: [192.0.2.16/28]}
      db: {members: [203.0.113.5, "2001:db8::5"]}
    allow:
      - {from: web, to: db, ports: [tcp/5432]}
    """

func failure(_ errno: Int32, _ what: String) -> InMemoryKernel.Failure { .init(errno: errno, operation: what) }

let ERESTART: Int32 = 85, EPERM: Int32 = 1, EINVAL: Int32 = 22

struct ReconcilerTests {
    let logger = Logger(label: "test")

    func make(_ kernel: InMemoryKernel, _ dir: PolicyDir) -> Reconciler {
        Reconciler(kernel: kernel, policyDirectory: dir.path, logger: logger)
    }

    @Test func startCreatesTheTable() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        let outcome = try await r.start()
        #expect(outcome?.replacedTable == true)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
        #expect(await r.state.inSync)
        #expect(await r.state.applies == 1)
    }

    @Test func startBuildsAMissingTableInStagesHooksLast() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let desired = try dir.compiled()
        let kernel = InMemoryKernel()
        let r = Reconciler(kernel: kernel, policyDirectory: dir.path, logger: logger, stageBudget: 4)
        let outcome = try await r.start()
        #expect(outcome?.replacedTable == true)
        #expect(kernel.table?.isEquivalent(to: desired) == true)
        let applied = kernel.appliedTransactions
        #expect(applied.count > 2)
        func hooks(_ tx: Transaction) -> Bool {
            tx.changes.contains { if case .addChain(let c) = $0 { return c.base != nil } else { return false } }
        }
        #expect(applied.dropLast().allSatisfy { !hooks($0) })
        #expect(hooks(applied.last!))
        #expect(await r.state.inSync)
        #expect(await r.state.applies == 1)

        // Edits after the build are element diffs against memory, as usual.
        try dir.write("p.yaml", basePolicy.replacingOccurrences(of: "192.0.2.16/28", with: "192.0.2.32/28"))
        let edit = await r.reload("edit")
        #expect(edit?.replacedTable == false)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
    }

    @Test func aStagedBuildThatFailsLeavesNoTable() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        // The second stage is refused: the first one is removed again, and start reports the error.
        let refusing = HookedKernel(kernel, before: { n in if n == 2 { throw failure(EINVAL, "adding rule") } })
        let r2 = Reconciler(kernel: refusing, policyDirectory: dir.path, logger: logger, stageBudget: 4)
        await #expect(throws: InMemoryKernel.Failure.self) { try await r2.start() }
        #expect(kernel.table == nil)
        #expect(await r2.state.inSync == false)
        #expect(await r2.state.lastError?.contains("apply failed") == true)
        #expect(kernel.appliedTransactions.count == 2)  // the first stage, and the removal
        #expect(kernel.appliedTransactions.last?.changes == [.addTable, .deleteTable])
    }

    /// Someone changes elements of the table while it is being created: the build goes on
    /// (its skeleton is intact), then the reconciler reads the whole table and repairs.
    @Test func aStagedBuildDisturbedByOthersIsReadBackAndRepaired() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let desired = try dir.compiled()
        let kernel = InMemoryKernel()
        let emptied = Flag()
        let disturbing = HookedKernel(kernel, after: { n in
            guard n == 2 else { return }
            kernel.tamper(onlyElementsOf: ["zoned_v4"]) { t in
                guard let i = t?.sets.firstIndex(where: { $0.name == "zoned_v4" }), !t!.sets[i].elements.isEmpty else { return }
                t!.sets[i].elements = ElementList()
                emptied.value = true
            }
        })
        let r = Reconciler(kernel: disturbing, policyDirectory: dir.path, logger: logger, stageBudget: 4)
        let dumps = kernel.dumpCount
        try await r.start()
        #expect(kernel.table?.isEquivalent(to: desired) == true)
        #expect(emptied.value, "the disturbance happened during the build")
        #expect(kernel.dumpCount >= dumps + 2, "the start's dump, and the read-back after the build")
        #expect(await r.state.inSync)
    }

    @Test func startAdoptsAMatchingTableWithoutChangingIt() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel(table: try dir.compiled())
        let r = make(kernel, dir)
        let outcome = try await r.start()
        #expect(outcome?.changes == 0)
        #expect(kernel.appliedTransactions.isEmpty)
    }

    @Test func invalidPolicyAtStartKeepsTheTableInForce() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let good = try dir.compiled()
        try dir.write("p.yaml", basePolicy.replacingOccurrences(of: "to: db", with: "to: dbb"))
        let kernel = InMemoryKernel(table: good)
        let r = make(kernel, dir)
        #expect(try await r.start() == nil)
        #expect(kernel.table == good)
        #expect(kernel.appliedTransactions.isEmpty)
        let diagnostics = await r.state.lastErrorDiagnostics
        #expect(diagnostics.contains { $0.contains("p.yaml:5:") && $0.contains("unknown zone 'dbb'") })
        // Status says what is enforced: the table found, not a policy of 0 zones.
        #expect(await r.state.enforcingTableFoundAtStart == true)
        #expect(await r.state.elements == good.elementCount)
        // The table in force is enforced: drift is repaired back to it.
        kernel.tamper { t in t!.chains[0].rules.removeAll() }
        _ = await r.handle(.changed(generation: kernel.generation(), pid: 4242, processName: "nft", touchedTable: true))
        #expect(kernel.table == good)
        // A valid policy arrives: its counts replace the flag.
        try dir.write("p.yaml", basePolicy)
        _ = await r.reload("fixed")
        #expect(await r.state.enforcingTableFoundAtStart == nil)
        #expect(await r.state.zones > 0)
    }

    /// A periodic resync that finds the last good rule set in force does not make broken files
    /// valid: their errors (and `zonewall_policy_valid` 0) stay until a valid policy is loaded.
    @Test func invalidPolicyStaysReportedAcrossResyncs() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        _ = try await r.start()
        try dir.write("p.yaml", "zones: [\n")
        _ = await r.reload("edit")
        #expect(await !r.state.lastErrorDiagnostics.isEmpty)
        _ = await r.resync(.resync("periodic"))
        #expect(await r.state.inSync)
        let kept = await r.state.lastErrorDiagnostics
        #expect(kept.contains { $0.contains("p.yaml:") }, "\(kept)")
        #expect(await r.state.lastError?.hasPrefix("invalid policy") == true)
        try dir.write("p.yaml", basePolicy)
        _ = await r.reload("fixed")
        #expect(await r.state.lastErrorDiagnostics.isEmpty)
        #expect(await r.state.lastError == nil)
    }

    /// Attributes beyond rules and elements are drift too: a dormant table (it filters nothing),
    /// a chain's policy, a set's timeout, a rule's user data; each is repaired on its event.
    @Test(arguments: ["dormant", "policy", "timeout", "userdata"])
    func attributeDriftIsRepaired(_ what: String) async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let good = try dir.compiled()
        let kernel = InMemoryKernel(table: good)
        let r = make(kernel, dir)
        _ = try await r.start()
        #expect(kernel.table == good)
        kernel.tamper { t in
            switch what {
            case "dormant": t!.flags = .dormant
            case "policy": t!.chains[t!.chains.firstIndex { $0.base != nil }!].base!.policy = .drop
            case "timeout": t!.sets[0].timeout = 1000
            default: t!.chains[t!.chains.firstIndex { !$0.rules.isEmpty }!].rules[0].userData = [1, 2]
            }
        }
        #expect(kernel.table != good)
        let outcome = await r.handle(.changed(generation: kernel.generation(), pid: 4242, processName: "nft", touchedTable: true))
        // A dormant table is woken in place; the other attributes need a replacement.
        #expect(outcome?.replacedTable == (what != "dormant"))
        // Equivalent, attributes included: a replacement may list the sets in another order.
        #expect(kernel.table?.isEquivalent(to: good) == true)
        #expect(kernel.table?.flags == good.flags)
    }

    @Test func invalidPolicyAndNoTableRefusesToStart() async throws {
        let dir = try PolicyDir(["p.yaml": "zones: [oops]\n"])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        await #expect(throws: StartupRefused.self) { try await r.start() }
        #expect(kernel.table == nil)
    }

    @Test func membershipEditIsIncrementalAndNeedsNoDump() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        try dir.write("p.yaml", basePolicy.replacingOccurrences(of: "192.0.2.16/28", with: "192.0.2.16/28, 192.0.2.40"))
        kernel.failNextDump(failure(EPERM, "dump"))  // a dump now would fail the reload
        let outcome = try #require(await r.reload("edit"))
        #expect(outcome.replacedTable == false)
        #expect(outcome.changes > 0)
        let tx = try #require(kernel.appliedTransactions.last)
        #expect(!tx.replacesTable)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
    }

    @Test func badEditKeepsLastGoodPolicy() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        let good = kernel.table
        try dir.write("p.yaml", basePolicy + "\n  - {from: web, to: db, ports: [tcp/0]}\n")
        #expect(await r.reload("bad edit") == nil)
        #expect(kernel.table == good)
        let state = await r.state
        #expect(state.policyLoadErrors == 1)
        #expect(state.lastErrorDiagnostics.contains { $0.hasPrefix(dir.path + "/p.yaml:6:") && $0.contains("port 0") })
        // The next good edit clears the error.
        try dir.write("p.yaml", basePolicy)
        _ = await r.reload("fixed")
        #expect(await r.state.lastError == nil)
    }

    @Test func generationMovedRetriesAfterReread() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        kernel.commitElsewhere()                          // someone commits: our generation is stale
        try dir.write("p.yaml", basePolicy.replacingOccurrences(of: "tcp/5432", with: "tcp/5432, tcp/5433"))
        let outcome = await r.reload("edit")
        #expect(outcome != nil)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
    }

    @Test func injectedErestartIsRetried() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        kernel.failNextApply(failure(ERESTART, "commit"), failure(ERESTART, "commit"))
        let r = make(kernel, dir)
        try await r.start()
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
        #expect(await r.state.applyFailures == 0)
    }

    @Test func driftIsRepairedAndOwnEventsIgnored() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        let applied = kernel.appliedTransactions.count
        // Our own commit's notification is not drift.
        #expect(await r.handle(.changed(generation: kernel.generation(), pid: UInt32(getpid()), processName: "zonewall", touchedTable: true)) == nil)
        // A foreign change elsewhere is not drift either, and needs no dump.
        kernel.commitElsewhere()
        #expect(await r.handle(.changed(generation: kernel.generation(), pid: 4242, processName: "nft", touchedTable: false)) == nil)
        #expect(kernel.appliedTransactions.count == applied)
        // Someone deletes an element of our table.
        kernel.tamper { t in
            let i = t!.sets.firstIndex { !$0.elements.isEmpty }!
            t!.sets[i].elements = ElementList(t!.sets[i].elements.dropFirst())
        }
        let repaired = try #require(await r.handle(.changed(generation: kernel.generation(), pid: 4242, processName: "nft", touchedTable: true)))
        #expect(repaired.changes == 1)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
        #expect(await r.state.driftRepairs == 1)
        // The whole table deleted (nft flush ruleset).
        kernel.tamper { $0 = nil }
        _ = await r.handle(.changed(generation: kernel.generation(), pid: 4242, processName: "nft", touchedTable: true))
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
        #expect(await r.state.driftRepairs == 2)
    }

    /// A foreign commit that only changed elements is repaired by reading just those sets: no
    /// dump of the table (a dump failure injected here would otherwise surface).
    @Test func elementOnlyDriftReadsOnlyTheSetsConcerned() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        let desired = try dir.compiled()
        let victim = try #require(desired.sets.first { $0.elements.count > 0 }?.name)
        let stranger = SetElement(key: [ValueRange(Value(0xCB00_71FE, width: 4))])

        // An element deleted from one set and a foreign one added to zoned_v4.
        kernel.tamper(onlyElementsOf: [victim, "zoned_v4"]) { t in
            let i = t!.sets.firstIndex { $0.name == victim }!
            t!.sets[i].elements = ElementList(t!.sets[i].elements.dropFirst())
            let z = t!.sets.firstIndex { $0.name == "zoned_v4" }!
            t!.sets[z].elements = ElementList(Array(t!.sets[z].elements) + [stranger])
        }
        kernel.failNextDump(failure(EPERM, "dumping"))
        let event = KernelEvent.changed(generation: kernel.generation(), pid: 4242, processName: "nft", touchedTable: true,
                                        onlyElementsOf: [victim, "zoned_v4"])
        let repaired = try #require(await r.handle(event))
        #expect(repaired.changes == 2)
        #expect(kernel.table?.isEquivalent(to: desired) == true)
        #expect(await r.state.driftRepairs == 1)
        #expect(await r.state.inSync)
        let tx = try #require(kernel.appliedTransactions.last)
        #expect(tx.elementChanges == 2 && !tx.replacesTable)

        // Our repair is reported back to us: not drift. An edit afterwards diffs against memory as usual.
        #expect(await r.handle(.changed(generation: kernel.generation(), pid: UInt32(getpid()), processName: "zonewall",
                                        touchedTable: true, onlyElementsOf: [victim])) == nil)
        try dir.write("p.yaml", basePolicy.replacingOccurrences(of: "192.0.2.16/28", with: "192.0.2.32/28"))
        #expect(await r.reload("edit")?.replacedTable == false)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
        _ = try? kernel.dump(family: .inet, table: "zonewall")  // the injected failure, unused so far
    }

    /// When the targeted repair cannot be trusted, a full resync repairs instead: a set zonewall
    /// does not have, a commit we did not hear in between, or one landing before the repair.
    @Test func elementOnlyDriftFallsBackToAFullResync() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let desired = try dir.compiled()
        let victim = try #require(desired.sets.first { $0.elements.count > 0 }?.name)
        func damage(_ kernel: InMemoryKernel, reporting sets: Set<String>) {
            kernel.tamper(onlyElementsOf: sets) { t in
                let i = t!.sets.firstIndex { $0.name == victim }!
                t!.sets[i].elements = ElementList()
            }
        }
        for scenario in ["unknown set", "missed commit", "later commit"] {
            let kernel = InMemoryKernel()
            let r = make(kernel, dir)
            try await r.start()
            let dumps = kernel.dumpCount
            if scenario == "missed commit" { kernel.commitElsewhere() }
            damage(kernel, reporting: scenario == "unknown set" ? [victim, "not_ours"] : [victim])
            let generation = kernel.generation()
            if scenario == "later commit" { kernel.commitElsewhere() }
            let outcome = await r.handle(.changed(generation: generation, pid: 4242, processName: "nft", touchedTable: true,
                                                  onlyElementsOf: scenario == "unknown set" ? [victim, "not_ours"] : [victim]))
            #expect(outcome != nil, "\(scenario)")
            #expect(kernel.table?.isEquivalent(to: desired) == true, "\(scenario)")
            #expect(kernel.dumpCount > dumps, "\(scenario): repaired by a full resync")
        }
    }

    @Test func lostEventsTriggerAFullResync() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        kernel.tamper { t in t!.chains[0].rules.removeAll() }
        _ = await r.handle(.overflow)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
    }

    @Test(arguments: [EPERM, EINVAL])
    func kernelRefusalIsReportedAndNothingChanges(errno: Int32) async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        let before = kernel.table
        try dir.write("p.yaml", basePolicy.replacingOccurrences(of: "tcp/5432", with: "tcp/5432, udp/53"))
        kernel.failNextApply(failure(errno, "adding element to set z_web_v4"))
        #expect(await r.reload("edit") == nil)
        #expect(kernel.table == before)
        let state = await r.state
        #expect(state.applyFailures == 1)
        #expect(state.lastError?.contains("z_web_v4") == true)
        #expect(!state.inSync)
        // The next attempt (e.g. the periodic resync) converges.
        _ = await r.resync(.resync("periodic"))
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
    }

    @Test func aChangeBeforeSubscribingIsCaughtByTheGeneration() async throws {
        let dir = try PolicyDir(["a.yaml": basePolicy])
        let kernel = InMemoryKernel()
        let r = make(kernel, dir)
        try await r.start()
        // Nothing moved: no dump, no transaction.
        let applied = kernel.appliedTransactions.count
        #expect(await r.resyncIfMoved() == nil)
        #expect(kernel.appliedTransactions.count == applied)
        // Someone deletes the table before the daemon listens: repaired.
        kernel.tamper { $0 = nil }
        let repaired = try #require(await r.resyncIfMoved())
        #expect(repaired.replacedTable)
        #expect(try kernel.table?.isEquivalent(to: dir.compiled()) == true)
    }

    @Test func stateFileRoundTripsAtomically() throws {
        let dir = NSTemporaryDirectory() + "zw-state-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.json"
        var state = ReconcilerState(policyDirectory: "/etc/zonewall", pid: 7)
        state.lastErrorDiagnostics = ["a.yaml:1:2: error: x"]
        state.applies = 3
        try StateFile(path: path).write(state)
        let read = try StateFile(path: path).read()
        #expect(read.applies == 3)
        #expect(read.lastErrorDiagnostics == state.lastErrorDiagnostics)
    }

    /// State belongs to one namespace and one policy directory: each pair has its own file,
    /// and one directory spelled two ways (a trailing slash, `..`, a symlink) has one.
    @Test func defaultStatePathIsPerNamespaceAndPolicyDirectory() throws {
        let base = NSTemporaryDirectory() + "zw-statepath-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: base + "/p", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: base + "/link", withDestinationPath: base + "/p")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let host = StateFile.defaultPath(namespace: nil, policyDirectory: base + "/p")
        let a = StateFile.defaultPath(namespace: "zw-a", policyDirectory: base + "/p")
        let b = StateFile.defaultPath(namespace: "zw-b", policyDirectory: base + "/p")
        #expect(Set([host, a, b]).count == 3)
        // Namespaces that do not exist are named by name; this one by its identity, however named.
        #expect(a.hasPrefix("/run/zonewall/state-netns-zw-a-") && host.hasPrefix("/run/zonewall/state-ns-"))
        #expect(StateFile.defaultPath(namespace: "/proc/self/ns/net", policyDirectory: base + "/p") == host)
        #expect(StateFile.defaultPath(namespace: "/run/netns/zw-a", policyDirectory: base + "/p").hasPrefix("/run/zonewall/state-netns-_run_netns_zw-a-"))
        #expect(StateFile.defaultPath(namespace: "zw-a", policyDirectory: base + "/p/") == a)
        #expect(StateFile.defaultPath(namespace: "zw-a", policyDirectory: base + "/p/../p") == a)
        #expect(StateFile.defaultPath(namespace: "zw-a", policyDirectory: base + "/link") == a)
        #expect(StateFile.defaultPath(namespace: "zw-a", policyDirectory: base) != a)

        // The namespace is part of the state itself, so a file given by hand can be checked too.
        let path = base + "/state.json"
        try StateFile(path: path).write(ReconcilerState(policyDirectory: base + "/p", namespace: "zw-a", pid: 7))
        #expect(try StateFile(path: path).read().namespace == "zw-a")
    }
}

struct DigestTests {
    @Test func digestIgnoresListingOrderAndSeesEveryElement() throws {
        let dir = try PolicyDir(["a.yaml": basePolicy])
        let table = try dir.compiled()
        var shuffled = table
        shuffled.sets.reverse()
        shuffled.chains.reverse()
        #expect(Digest.of(shuffled) == Digest.of(table))
        #expect(Digest.of(table).count == 16)

        // One element more, or one verdict changed, is another digest.
        try dir.write("a.yaml", basePolicy.replacingOccurrences(of: "192.0.2.16/28", with: "192.0.2.16/28, 192.0.2.64"))
        #expect(Digest.of(try dir.compiled()) != Digest.of(table))
        var retargeted = table
        let i = try #require(retargeted.sets.firstIndex { $0.name == "src_v4" })
        retargeted.sets[i].elements = ElementList(retargeted.sets[i].elements.map {
            SetElement(key: $0.key, data: .verdict(.jump("deny")))
        })
        #expect(Digest.of(retargeted) != Digest.of(table))
    }
}

/// An `InMemoryKernel` with hooks around its `apply` calls, numbered from 1: `before` may throw
/// to refuse the call (nothing is applied), `after` runs once the call is applied.
final class HookedKernel: KernelRuleset, @unchecked Sendable {
    let base: InMemoryKernel
    private let before: (Int) throws -> Void
    private let after: (Int) -> Void
    private var applies = 0
    init(_ base: InMemoryKernel, before: @escaping (Int) throws -> Void = { _ in }, after: @escaping (Int) -> Void = { _ in }) {
        self.base = base
        self.before = before
        self.after = after
    }
    func dump(family: Family, table: String) throws -> KernelSnapshot { try base.dump(family: family, table: table) }
    func dumpSkeleton(family: Family, table: String) throws -> KernelSnapshot { try base.dumpSkeleton(family: family, table: table) }
    func elements(of sets: [NamedSet], family: Family, table: String) throws -> [NamedSet] {
        try base.elements(of: sets, family: family, table: table)
    }
    func apply(_ tx: Transaction, expectingGeneration generation: UInt32?) throws {
        applies += 1
        try before(applies)
        try base.apply(tx, expectingGeneration: generation)
        after(applies)
    }
    func check(_ tx: Transaction) throws { try base.check(tx) }
    func generation() throws -> UInt32 { base.generation() }
    func events(family: Family, table: String) throws -> KernelEvents { base.events(family: family, table: table) }
}

final class Flag: @unchecked Sendable { var value = false }

/// Revocation hooked into the reconciler, against the in-memory conntrack table.
struct ReconcilerRevocationTests {
    let logger = Logger(label: "test")
    let db5432 = ConntrackEntry(family: .ipv4, proto: 6, source: IPPrefix.parse("192.0.2.20")!.address,
                                destination: IPPrefix.parse("203.0.113.5")!.address, sourcePort: 40000, destinationPort: 5432)
    let db6000 = ConntrackEntry(family: .ipv4, proto: 6, source: IPPrefix.parse("192.0.2.20")!.address,
                                destination: IPPrefix.parse("203.0.113.5")!.address, sourcePort: 40001, destinationPort: 6000)
    let twoPorts = basePolicy.replacingOccurrences(of: "tcp/5432", with: "tcp/5432, tcp/6000")

    @Test func anEditThatRemovesPermissionRevokesOnlyWhatItDenies() async throws {
        let dir = try PolicyDir(["p.yaml": twoPorts])
        let conntrack = InMemoryConntrack()
        let r = Reconciler(kernel: InMemoryKernel(), policyDirectory: dir.path, logger: logger, conntrack: conntrack)
        try await r.start()
        conntrack.insert(db5432)
        conntrack.insert(db6000)
        let scansBefore = conntrack.scans

        // An edit that changes nothing in the kernel removes no permission: no scan.
        try dir.write("p.yaml", twoPorts + "\n# a comment\n")
        await r.reload("comment")
        #expect(conntrack.scans == scansBefore)

        try dir.write("p.yaml", basePolicy)  // tcp/6000 loses its permission
        await r.reload("edit")
        #expect(conntrack.entries == [db5432])
        #expect(await r.state.revokedFlows == 1)
        #expect(await r.state.revokedFlowsByPair == ["web db": 1])

        // Drift repair restores what was enforced: no revocation scan.
        let scans = conntrack.scans
        await r.resync(.drift)
        #expect(conntrack.scans == scans)
    }

    @Test func optingOutKeepsEstablishedFlows() async throws {
        let dir = try PolicyDir(["p.yaml": twoPorts])
        let conntrack = InMemoryConntrack()
        let r = Reconciler(kernel: InMemoryKernel(), policyDirectory: dir.path, logger: logger, conntrack: conntrack)
        try await r.start()
        conntrack.insert(db6000)
        try dir.write("p.yaml", basePolicy + "\nsettings: {revoke_established: false}\n")
        await r.reload("edit")
        #expect(conntrack.entries == [db6000])
        #expect(await r.state.revokedFlows == nil)
    }
}

/// `run --confirm-edits` windows, against the fake kernel.
struct ReconcilerConfirmTests {
    let logger = Logger(label: "test")
    let wider = basePolicy.replacingOccurrences(of: "tcp/5432", with: "tcp/5432, tcp/6000")

    @Test func anUnconfirmedEditGoesBackAndAConfirmedOneStays() async throws {
        let dir = try PolicyDir(["p.yaml": basePolicy])
        let base = try dir.compiled()
        let kernel = InMemoryKernel()
        let r = Reconciler(kernel: kernel, policyDirectory: dir.path, logger: logger, confirmEdits: 60)
        try await r.start()
        #expect(await r.confirmationDeadline == nil)  // the start is the baseline

        // The edit adds a zone and a rule: after the revert, status counts the policy back in force.
        try dir.write("p.yaml", """
            zones:
              web: {members: [192.0.2.16/28]}
              db: {members: [203.0.113.5, "2001:db8::5"]}
              cache: {members: [198.51.100.7]}
            allow:
              - {from: web, to: db, ports: [tcp/5432, tcp/6000]}
              - {from: cache, to: db, ports: [tcp/6379]}
            """)
        await r.reload("edit")
        #expect(await r.confirmationDeadline != nil)
        #expect(await (r.state.zones, r.state.rules) == (3, 2))
        #expect(kernel.table?.isEquivalent(to: try dir.compiled()) == true)
        await r.revertUnconfirmed()
        #expect(kernel.table?.isEquivalent(to: base) == true)
        #expect(await (r.state.zones, r.state.members, r.state.rules) == (2, 3, 1))
        #expect(await r.state.revertedEdit?.contains("for lack of confirmation") == true)
        #expect(await r.confirmationDeadline == nil)
        // Drift repair goes back to the confirmed policy too, with no window.
        await r.resync(.drift)
        #expect(kernel.table?.isEquivalent(to: base) == true)
        #expect(await r.confirmationDeadline == nil)

        // A later edit opens a new window; confirmed, it stays and becomes the baseline.
        try dir.write("p.yaml", wider + "\n# again\n")
        await r.reload("edit again")
        #expect(await r.confirmationDeadline != nil)
        await r.confirmPending()
        #expect(await r.revertUnconfirmed() == nil)  // nothing pending: nothing to undo
        #expect(kernel.table?.isEquivalent(to: try dir.compiled()) == true)
        #expect(await r.state.revertedEdit == nil)
    }
}
