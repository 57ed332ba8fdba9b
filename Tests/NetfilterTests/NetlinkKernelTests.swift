import TestSupport
import Foundation
import Glibc
@testable import Netfilter
import Ruleset
import Synchronization
import Testing

/// These tests talk to real nftables, each in a network namespace of its own
/// (`zw-nf-<random>`, deleted afterwards). They skip loudly when not run as root.
@Suite("NetlinkKernel in network namespaces")
struct NetlinkKernelTests {
    @Test(needsRoot) func roundTripEveryConstruct() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let empty = try kernel.dump(family: .inet, table: "zonewall")
            #expect(empty.table == nil)
            let table = Fixtures.table
            try kernel.apply(Transaction.replace(with: table), expectingGeneration: empty.generation)
            let snap = try kernel.dump(family: .inet, table: "zonewall")
            #expect(snap.generation != empty.generation)
            #expect(snap.generation == (try kernel.generation()))
            expectEqualTables(snap.table, inKernelOrder(table))

            // Replacing an existing table works the same way.
            try kernel.apply(Transaction.replace(with: table), expectingGeneration: snap.generation)
            expectEqualTables(try kernel.dump(family: .inet, table: "zonewall").table, inKernelOrder(table))
        }
    }

    /// A staged build over real netlink sits out others' commits while its table's skeleton is
    /// intact (the kernel's skeleton of a partial build is compared with the stages'), and
    /// stops when someone changes that skeleton, leaving their table alone.
    @Test(needsRoot) func stagedBuildAroundOthersCommits() throws {
        if skipUnlessRoot() { return }
        let table = Fixtures.table
        let stages = Transaction.stages(creating: table, budget: 3)
        try #require(stages.count > 3)
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let other = try NetlinkKernel(namespace: ns)
            var n = 0
            let result = try kernel.build(stages, from: kernel.generation()) { k, _ in
                guard k < stages.count - 1 else { return }
                n += 1
                try other.apply(Transaction(family: .inet, table: "other\(n)", changes: [.addTable]), expectingGeneration: nil)
            }
            #expect(result.sawForeignCommits)
            #expect(result.generation == (try kernel.generation()))
            expectEqualTables(try kernel.dump(family: .inet, table: "zonewall").table, inKernelOrder(table))
        }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let other = try NetlinkKernel(namespace: ns)
            #expect(throws: BuildInterrupted.self) {
                try kernel.build(stages, from: kernel.generation()) { k, _ in
                    guard k == 1 else { return }
                    try other.apply(Transaction(family: .inet, table: "zonewall", changes: [.addChain(Chain(name: "theirs"))]),
                                    expectingGeneration: nil)
                }
            }
            #expect(try kernel.dumpSkeleton(family: .inet, table: "zonewall").table?.chain(named: "theirs") != nil)
        }
    }

    /// What zonewall stores must be what nft stores for the same text, down to the set user
    /// data and the element and expression encoding.
    @Test(needsRoot) func sameAsNftForTheSameText() throws {
        if skipUnlessRoot() { return }
        let table = Fixtures.table
        try withNamespace { ours in
            try withNamespace { theirs in
                let kernel = try NetlinkKernel(namespace: ours)
                try kernel.apply(Transaction.replace(with: table), expectingGeneration: nil)
                try nft(theirs, ["-f", "-"], input: NftText.replaceScript(table))

                let list = ["-j", "list", "table", "inet", "zonewall"]
                let a = try normalizedJSON(nft(ours, list)), b = try normalizedJSON(nft(theirs, list))
                #expect(a == b)
                #expect(try nft(ours, ["list", "table", "inet", "zonewall"]) == nft(theirs, ["list", "table", "inet", "zonewall"]))
                // libnftnl's rendering of every element and expression as stored in the kernel.
                let debug = ["--debug=netlink", "list", "table", "inet", "zonewall"]
                let da = try withoutHandles(nft(ours, debug)), db = try withoutHandles(nft(theirs, debug))
                #expect(da == db)
                #expect(da.split(separator: "\n").count > 100)
                if da != db { printDiff(da, db) }
                if ProcessInfo.processInfo.environment["ZW_SHOW"] != nil { print(try nft(ours, ["list", "table", "inet", "zonewall"])) }
                // Set declarations, user data included.
                let theirKernel = try NetlinkKernel(namespace: theirs)
                #expect(try kernel.rawSetAttributes(family: .inet, table: "zonewall")
                        == theirKernel.rawSetAttributes(family: .inet, table: "zonewall"))
                // And nft's table reads back as the same model.
                expectEqualTables(try theirKernel.dump(family: .inet, table: "zonewall").table, inKernelOrder(table))
            }
        }
    }

    @Test(needsRoot) func incrementalElementChanges() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let old = inKernelOrder(Fixtures.table)
            try kernel.apply(Transaction.replace(with: old), expectingGeneration: nil)
            let before = try kernel.dump(family: .inet, table: "zonewall")

            var new = old
            func edit(_ name: String, _ body: (inout [SetElement]) -> Void) {
                let i = new.sets.firstIndex { $0.name == name }!
                var e = Array(new.sets[i].elements)
                body(&e)
                new.sets[i].elements = ElementList(e.sorted())
            }
            edit("members_v4") {
                $0.removeAll { $0.key[0] == V.net("10.0.1.0/24") || $0.key[0] == V.net("255.255.255.0/24") }
                $0 += ["10.0.2.0/24", "10.0.1.128/25", "255.255.255.255", "172.16.0.0/12"].map { SetElement(key: [V.net($0)]) }
            }
            edit("src_v4") {
                let i = $0.firstIndex { $0.key[0] == V.net("10.0.0.0/8") }!
                $0[i].data = .verdict(.jump("from_web"))  // same key, new verdict: delete + add
                $0.removeAll { $0.key[0] == V.net("255.255.255.255") }
            }
            edit("empty_v4") { $0 = [SetElement(key: [V.net("100.64.0.0/10")])] }
            edit("allow_v6") { $0.append(SetElement(key: [V.net("2001:db8::/64"), V.proto(17), V.port(5000, 5100)])) }

            let tx = Transaction.diff(from: before.table, to: new)
            #expect(!tx.replacesTable)
            #expect(tx.elementChanges > 0)
            try kernel.apply(tx, expectingGeneration: before.generation)
            expectEqualTables(try kernel.dump(family: .inet, table: "zonewall").table, new)

            // And back again.
            let back = Transaction.diff(from: new, to: old)
            try kernel.apply(back, expectingGeneration: nil)
            expectEqualTables(try kernel.dump(family: .inet, table: "zonewall").table, old)
        }
    }

    @Test(needsRoot) func rejectedBatchesChangeNothingAndNameTheObject() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let table = inKernelOrder(Fixtures.table)
            try kernel.apply(Transaction.replace(with: table), expectingGeneration: nil)
            let listing = ["list", "table", "inet", "zonewall"]
            let before = try nft(ns, listing)
            let gen = try kernel.generation()

            // A conflicting element (its key exists with other data), after a valid change in the same batch.
            var tx = Transaction(family: .inet, table: "zonewall", changes: [
                .addElements(set: "members_v4", [SetElement(key: [V.net("100.64.0.0/10")])]),
                .addElements(set: "src_v4", [SetElement(key: [V.net("172.16.0.0/12")], data: .verdict(.accept)),
                                             SetElement(key: [V.net("192.0.2.0/28")], data: .verdict(.drop))]),
            ])
            let dup = try #require(throws: NetfilterError.self) { try kernel.apply(tx, expectingGeneration: nil) }
            #expect([EEXIST, EBUSY, ENOTEMPTY].contains(dup.errno), "\(dup)")
            #expect(dup.description.hasPrefix("adding element 192.0.2.0/28 to map src_v4: "), "\(dup)")
            #expect(try nft(ns, listing) == before)

            // A rule jumping to a chain that does not exist.
            tx.changes = [
                .addRule(chain: "forward", Rule([.verdict(.accept)])),
                .addRule(chain: "forward", Rule([.match(.l4proto, .equal(V.u8(6))), .verdict(.jump("nowhere"))])),
            ]
            let jump = try #require(throws: NetfilterError.self) { try kernel.apply(tx, expectingGeneration: nil) }
            #expect(jump.errno == ENOENT)
            #expect(jump.description.hasPrefix("adding rule 2 to chain forward (meta l4proto tcp jump nowhere): ENOENT"), "\(jump)")
            #expect(try nft(ns, listing) == before)

            // check() validates without committing, and reports the same errors.
            #expect(throws: NetfilterError.self) { try kernel.check(tx) }
            try kernel.check(Transaction(family: .inet, table: "zonewall", changes: [
                .addElements(set: "members_v4", [SetElement(key: [V.net("100.64.0.0/10")])]),
                .addChain(Chain(name: "extra")),
                .addRule(chain: "extra", Rule([.verdict(.drop)])),
            ]))
            try kernel.check(Transaction.replace(with: Table(family: .inet, name: "zonewall")))
            #expect(try nft(ns, listing) == before)
            #expect(try kernel.generation() == gen)

            // A batch pinned to a stale generation is refused as a whole.
            let valid = Transaction(family: .inet, table: "zonewall", changes: [
                .addElements(set: "members_v4", [SetElement(key: [V.net("100.64.0.0/10")])]),
            ])
            let stale = try #require(throws: NetfilterError.self) { try kernel.apply(valid, expectingGeneration: gen &- 1) }
            #expect(stale.isGenerationMismatch)
            #expect(stale.errno == ERESTART)
            #expect(try nft(ns, listing) == before)
            try kernel.apply(valid, expectingGeneration: gen)
            #expect(try nft(ns, listing) != before)
        }
    }

    /// An owned table (`--own-table`): another process's `nft delete rule` gets EPERM; with
    /// `persist` the table outlives the owner's socket, ownerless, and a new owner adopts it by
    /// the ordinary drift repair (the flags differ, so the table is replaced).
    @Test(needsRoot) func ownedTableRefusesOthers() throws {
        try withNamespace { ns in
            var table = inKernelOrder(Fixtures.table)
            table.flags = NetlinkKernel.ownedTableFlags
            do {
                let owner = try NetlinkKernel(namespace: ns)
                try owner.apply(Transaction.create(table), expectingGeneration: nil)
                let dumped = try #require(try owner.dump(family: .inet, table: "zonewall").table)
                #expect(dumped.flags == table.flags)
                #expect(dumped.isEquivalent(to: table))
                let handle = try #require(try nft(ns, ["-a", "list", "chain", "inet", "zonewall", "input"])
                    .split(separator: "\n").compactMap { $0.components(separatedBy: "# handle ").last.flatMap { Int($0) } }.first)
                #expect(throws: CommandError.self) {
                    try nft(ns, ["delete", "rule", "inet", "zonewall", "input", "handle", "\(handle)"])
                }
                do {
                    try nft(ns, ["delete", "rule", "inet", "zonewall", "input", "handle", "\(handle)"])
                } catch let e as CommandError {
                    #expect(e.stderr.contains("Operation not permitted"), "\(e)")
                }
                #expect(throws: CommandError.self) { try nft(ns, ["add", "table", "inet", "zonewall", "{ flags dormant; }"]) }
                #expect(try owner.dump(family: .inet, table: "zonewall").table == dumped, "the refused commands changed nothing")
            }
            // The owner's socket is closed now.
            let next = try NetlinkKernel(namespace: ns)
            let left = try next.dump(family: .inet, table: "zonewall").table
            guard table.flags.contains(.persist) else {
                #expect(left == nil, "an owned table goes away with its owner")
                return
            }
            let orphan = try #require(left)
            #expect(orphan.flags == [.persist], "the table stays, without an owner")
            let tx = Transaction.diff(from: orphan, to: table)
            #expect(tx.replacesTable)
            try next.apply(tx, expectingGeneration: nil)
            #expect(try next.dump(family: .inet, table: "zonewall").table?.flags == table.flags)
            #expect(throws: CommandError.self) { try nft(ns, ["flush", "chain", "inet", "zonewall", "input"]) }
        }
    }

    @Test(needsRoot) func foreignRulesShowAsDrift() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let table = inKernelOrder(Fixtures.table)
            try kernel.apply(Transaction.replace(with: table), expectingGeneration: nil)
            try nft(ns, ["add", "rule", "inet", "zonewall", "input", "meta", "mark", "0x1", "accept"])
            let dumped = try #require(try kernel.dump(family: .inet, table: "zonewall").table)
            #expect(dumped != table)
            let foreign = try #require(dumped.chain(named: "input")?.rules.last)
            #expect(foreign.expressions.isEmpty)
            #expect(foreign.comment?.hasPrefix(TableDecoder.undecodableMarker) == true)
            #expect(!Transaction.diff(from: dumped, to: table).isEmpty)

            let strict = try NetlinkKernel(namespace: ns, undecodableRules: .throwError)
            #expect(throws: NetfilterError.self) { try strict.dump(family: .inet, table: "zonewall") }
        }
    }

    /// Dumps while another socket keeps committing: each dump that succeeds is exactly the
    /// table of the generation it reports, although its sets are read on several sockets at
    /// once (set s0 takes many messages, so commits also land in the middle of its dump).
    @Test(needsRoot) func dumpsDuringCommitsAreConsistent() async throws {
        if skipUnlessRoot() { return }
        // Seconds of blocking work go to a thread of their own, not to one of the few threads
        // that run every test's tasks (the event tests wait on those).
        let r = try await onOwnThread(Self.dumpWhileCommitting)
        print("dumps during \(r.commits) commits: \(r.consistent) consistent, \(r.gaveUp) gave up")
        #expect(r.wrong == [])
        #expect(r.last == .ok)
    }

    struct DumpsDuringCommits: Sendable {
        enum Last: Sendable, Equatable { case ok, wrong(String) }
        var commits = 60, consistent = 0, gaveUp = 0
        /// Dumps that are not the table of the generation they report.
        var wrong: [String] = []
        /// The dump after the last commit.
        var last = Last.ok
    }

    static func dumpWhileCommitting() throws -> DumpsDuringCommits {
        // Generation g0 + m holds marker m (198.51.100.m) in every set.
        @Sendable func table(marker m: Int) -> Table {
            let sets = (0..<48).map { i in
                let fixed = (0..<(i == 0 ? 5_000 : 100)).map { j in SetElement(key: [V.net("10.\(i).\(j / 256).\(j % 256)")]) }
                return NamedSet(name: "s\(i)", keyType: [.ipv4Address], flags: .interval,
                                elements: (fixed + [SetElement(key: [V.net("198.51.100.\(m)")])]).sorted())
            }
            return Table(family: .inet, name: "zonewall", sets: sets)
        }
        func problem(_ snap: KernelSnapshot, _ g0: UInt32, _ commits: Int) -> String? {
            let m = Int(snap.generation &- g0)
            guard (0...commits).contains(m) else { return "generation \(snap.generation) is not one of \(g0)…\(g0 &+ UInt32(commits))" }
            guard snap.table != table(marker: m) else { return nil }
            let differing = zip(snap.table?.sets ?? [], table(marker: m).sets).first { $0 != $1 }?.0.name
            return "generation \(snap.generation): not marker \(m)'s table (set \(differing ?? "list") differs)"
        }
        var r = DumpsDuringCommits()
        try withNamespace { ns in
            let writer = try NetlinkKernel(namespace: ns)
            let reader = try NetlinkKernel(namespace: ns)
            try writer.apply(Transaction.replace(with: table(marker: 0)), expectingGeneration: nil)
            let g0 = try writer.generation()
            let commits = r.commits
            let writerError = Mutex<(any Error)?>(nil)
            let group = DispatchGroup()
            DispatchQueue.global().async(group: group) {
                do {
                    for m in 1...commits {
                        try writer.apply(Transaction.diff(from: table(marker: m - 1), to: table(marker: m)), expectingGeneration: nil)
                        usleep(2_000)
                    }
                } catch {
                    writerError.withLock { $0 = error }
                }
            }
            while group.wait(timeout: .now()) == .timedOut {
                do {
                    let snap = try reader.dump(family: .inet, table: "zonewall")
                    if let p = problem(snap, g0, commits) { r.wrong.append(p) } else { r.consistent += 1 }
                } catch let e as NetfilterError where e.operation.contains("kept changing") {
                    r.gaveUp += 1
                }
            }
            if let e = writerError.withLock({ $0 }) { throw e }
            let last = try reader.dump(family: .inet, table: "zonewall")
            if last.generation != g0 &+ UInt32(commits) {
                r.last = .wrong("generation \(last.generation) after the last commit, not \(g0 &+ UInt32(commits))")
            } else if let p = problem(last, g0, commits) {
                r.last = .wrong(p)
            }
        }
        return r
    }

    /// `holds` confirms a large interval map by key, in several requests on several sockets,
    /// wholly or in parts; a missing range, a changed verdict, a range cut short or a missing
    /// set make it false.
    @Test(needsRoot) func lookupsConfirmWhatDumpsRead() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let base = V.v6("2001:db8::")
            // 12,000 ranges: separate and adjacent ones, singles, and one that runs to the
            // largest address (no end element). 24,000 kernel elements: many requests.
            var elements = (0..<12_000).map { i in
                let lo = Value(high: base.high, low: UInt64(i) * 4, width: 16)
                let hi = Value(high: base.high, low: UInt64(i) * 4 + UInt64(i % 3 == 0 ? 3 : i % 3 - 1), width: 16)
                return SetElement(key: [ValueRange(lo, hi)], data: .verdict(.jump(i % 2 == 0 ? "a" : "b")))
            }
            elements.append(SetElement(key: [ValueRange(V.v6("ffff::"), .max(width: 16))], data: .verdict(.jump("b"))))
            let map = NamedSet(name: "dst_v6", keyType: [.ipv6Address], dataType: .verdict, flags: .interval,
                               elements: ElementList(elements))
            let small = NamedSet(name: "small", keyType: [.ipv6Address], flags: .interval,
                                 elements: ElementList(elements.prefix(10).map { SetElement(key: $0.key) }))
            let table = Table(family: .inet, name: "zonewall",
                              chains: [Chain(name: "a"), Chain(name: "b"),
                                       Chain(name: "forward", base: BaseChain(hook: .forward),
                                             rules: [Rule([.verdictMap([.ip6Daddr], map: "dst_v6")])])],
                              sets: [small, map])
            try kernel.apply(Transaction.replace(with: table), expectingGeneration: nil)
            #expect(NetlinkKernel.prefersLookup(map) && !NetlinkKernel.prefersLookup(small))
            let dumped = try #require(try kernel.dump(family: .inet, table: "zonewall").table)
            #expect(dumped.sets.first { $0.name == "dst_v6" }!.elements.holdsSameElements(as: map.elements))

            func holds(_ part: ElementList? = nil, of set: NamedSet = map, readers: Int = 2) throws -> Bool {
                try kernel.holds(part ?? set.elements, of: set, family: .inet, table: "zonewall", readers: readers)
            }
            #expect(try holds(readers: 1))
            #expect(try holds(readers: 4))
            #expect(try holds(of: small))
            // A stage's share: ranges 5,000 to 8,999, whose neighbours lie outside it.
            #expect(try holds(ElementList(elements[5_000 ..< 9_000])))

            // A range taken out (one the next range starts right after), then put back.
            try nft(ns, ["delete", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::7ff8-2001:db8::7ffb }"])
            #expect(try !holds())
            #expect(try !holds(ElementList(elements[5_000 ..< 9_000])))
            #expect(try holds(ElementList(elements[9_000 ..< 12_000])))
            try nft(ns, ["add", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::7ff8-2001:db8::7ffb : jump a }"])
            #expect(try holds())
            // The same range with the other verdict.
            try nft(ns, ["delete", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::7ff8-2001:db8::7ffb }"])
            try nft(ns, ["add", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::7ff8-2001:db8::7ffb : jump b }"])
            #expect(try !holds())
            try nft(ns, ["delete", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::7ff8-2001:db8::7ffb }"])
            try nft(ns, ["add", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::7ff8-2001:db8::7ffb : jump a }"])
            #expect(try holds())
            // A range cut short at its end (one the next range does not start right after).
            try nft(ns, ["delete", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::8000-2001:db8::8001 }"])
            try nft(ns, ["add", "element", "inet", "zonewall", "dst_v6", "{ 2001:db8::8000 : jump a }"])
            #expect(try !holds())
            // A set that is not there.
            var renamed = map
            renamed.name = "absent"
            #expect(try !holds(of: renamed))
        }
    }

    /// 100,000 ranges in one verdict map, applied as one batch and dumped back.
    @Test(needsRoot) func hundredThousandElements() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let n = 100_000
            let base = V.v4("10.0.0.0").low
            let elements = (0..<n).map { i in
                let lo = Value(base + UInt64(i) * 4, width: 4)
                return SetElement(key: [ValueRange(lo, Value(lo.low + 2, width: 4))],
                                  data: .verdict(.jump(i % 2 == 0 ? "a" : "b")))
            }
            let table = Table(family: .inet, name: "zonewall",
                              chains: [Chain(name: "a"), Chain(name: "b"),
                                       Chain(name: "forward", base: BaseChain(hook: .forward),
                                             rules: [Rule([.verdictMap([.ipSaddr], map: "src_v4")])])],
                              sets: [NamedSet(name: "src_v4", keyType: [.ipv4Address], dataType: .verdict,
                                              flags: .interval, elements: elements)])
            let tx = Transaction.replace(with: table)
            // Sent as many libmnl batch pages in one sendmsg.
            let pages = BatchEncoder(family: .inet, table: "zonewall", knownSets: [:])
                .encode(tx, generation: nil, commit: true, firstSeq: 0).pages.pageCount
            #expect(pages > 10)
            let clock = ContinuousClock()
            let applyTime = try clock.measure { try kernel.apply(tx, expectingGeneration: nil) }
            var snap: KernelSnapshot?
            let dumpTime = try clock.measure { snap = try kernel.dump(family: .inet, table: "zonewall") }
            print("100k elements: \(NetlinkKernel.batchSize(of: tx)) bytes, apply \(applyTime), dump \(dumpTime)")
            expectEqualTables(snap?.table, inKernelOrder(table))
        }
    }
}

// MARK: - Helpers

/// Runs `body` on a thread of its own and returns its result.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

func expectEqualTables(_ got: Table?, _ expected: Table, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got == expected, sourceLocation: sourceLocation)
    guard let got, got != expected else { return }
    if got.chains.map(\.name) != expected.chains.map(\.name) { print("chain order: \(got.chains.map(\.name)) vs \(expected.chains.map(\.name))") }
    if got.sets.map(\.name) != expected.sets.map(\.name) { print("set order: \(got.sets.map(\.name)) vs \(expected.sets.map(\.name))") }
    for (a, b) in zip(got.sets, expected.sets) where a != b {
        print("set \(a.name) differs:\n got \(a.declaration) \(a.elements.count) elements\n exp \(b.declaration) \(b.elements.count) elements")
        for (x, y) in zip(a.elements, b.elements) where x != y { print("  first differing element: \(x) vs \(y)"); break }
    }
    for (a, b) in zip(got.chains, expected.chains) where a != b {
        if a.base != b.base { print("chain \(a.name) base: \(String(describing: a.base)) vs \(String(describing: b.base))") }
        for (r1, r2) in zip(a.rules, b.rules) where r1 != r2 { print("rule in \(a.name):\n got \(r1)\n exp \(r2)") }
        if a.rules.count != b.rules.count { print("chain \(a.name): \(a.rules.count) rules vs \(b.rules.count)") }
    }
}

/// `nft --debug=netlink list` prints rule handles after the chain name: drop them.
func withoutHandles(_ text: String) -> String {
    text.split(separator: "\n").map { line in
        let words = line.split(separator: " ")
        if words.count >= 3, !line.hasPrefix(" "), !line.hasPrefix("\t"), words.dropFirst(3).allSatisfy({ Int($0) != nil }) {
            return words.prefix(3).joined(separator: " ")
        }
        return String(line)
    }.joined(separator: "\n")
}

func printDiff(_ a: String, _ b: String) {
    let x = a.split(separator: "\n"), y = b.split(separator: "\n")
    for (i, (l, r)) in zip(x, y).enumerated() where l != r { print("line \(i):\n ours   \(l)\n theirs \(r)") }
    if x.count != y.count { print("line counts \(x.count) vs \(y.count)") }
}
