import CNetfilter
@testable import Netfilter
import Ruleset
import Testing

/// Set elements are encoded by the hand-written fast path unless libnftnl's
/// (`nftnl_set_elem_nlmsg_build`) is chosen; both must give the kernel exactly the same bytes.
@Suite("Set elements: the libnftnl path and the fast path write the same bytes")
struct ElementPathTests {
    static func encode(_ tx: Transaction, _ path: BatchEncoder.ElementPath, known: [String: NamedSet] = [:]) -> EncodedBatch {
        var encoder = BatchEncoder(family: tx.family, table: tx.table, knownSets: known)
        encoder.elementPath = path
        return encoder.encode(tx, generation: 7, commit: true, firstSeq: 100)
    }

    static func expectSameBytes(_ tx: Transaction, known: [String: NamedSet] = [:]) {
        let library = encode(tx, .libnftnl, known: known)
        let direct = encode(tx, .direct, known: known)
        #expect(library.bytes.count > 0)
        #expect(library.offsets == direct.offsets)
        #expect(library.operations.count == direct.operations.count)
        if library.bytes != direct.bytes {
            let i = zip(library.bytes, direct.bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(library.bytes.count, direct.bytes.count)
            Issue.record("first difference at byte \(i) of \(library.bytes.count) / \(direct.bytes.count)")
        }
    }

    @Test func fixtureTableCreation() {
        Self.expectSameBytes(Transaction.create(Fixtures.table))
    }

    /// Every kind of element zonewall writes: prefixes and ranges of single-field interval sets
    /// (with nft's first segment and an open interval to the top), concatenations with key
    /// ends, verdict maps with jumps and plain verdicts, a value map, a plain hash set; enough of
    /// them that the element lists are split over several messages.
    @Test func everyElementKindAndMessageSplitting() {
        var v4: [SetElement] = [], concat: [SetElement] = [], jumps: [SetElement] = [], marks: [SetElement] = [], plain: [SetElement] = []
        for i in 0..<2000 {
            let a = UInt64(0xC000_0200) + UInt64(i) * 4   // 192.0.2.0 + 4i
            let block = ValueRange(Value(a, width: 4), Value(a + 1, width: 4))
            v4.append(SetElement(key: [block]))
            concat.append(SetElement(key: [block, ValueRange(Value(6, width: 1), Value(6, width: 1)),
                                           ValueRange(Value(UInt64(1000 + i % 50), width: 2), Value(UInt64(2000 + i % 50), width: 2))]))
            jumps.append(SetElement(key: [block], data: .verdict(i % 3 == 0 ? .accept : .jump("z_zone_\(i % 17)"))))
            marks.append(SetElement(key: [block], data: .value(Value(UInt64(i), width: 4))))
            plain.append(SetElement(key: [ValueRange(Value(a, width: 4), Value(a, width: 4))]))
        }
        v4.append(SetElement(key: [ValueRange(Value(0xFFFF_FF00, width: 4), .max(width: 4))]))  // open interval
        let sets = [
            NamedSet(name: "ranges_v4", keyType: [.ipv4Address], flags: .interval, elements: v4),
            NamedSet(name: "z_web_v4", keyType: [.ipv4Address, .inetProtocol, .inetService], flags: .interval, elements: concat),
            NamedSet(name: "jump_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: jumps),
            NamedSet(name: "marks_v4", keyType: [.ipv4Address], dataType: .mark, flags: .interval, elements: marks),
            NamedSet(name: "hosts_v4", keyType: [.ipv4Address], elements: plain),
        ]
        var create = Transaction(family: .inet, table: "zonewall")
        create.changes.append(.addTable)
        for s in sets {
            create.changes.append(.addSet(s.declaration))
            create.changes.append(.addElements(set: s.name, s.elements))
        }
        let batch = Self.encode(create, .libnftnl)
        #expect(batch.operations.filter { if case .elements = $0 { true } else { false } }.count > sets.count)
        Self.expectSameBytes(create)

        // Adding to and deleting from existing sets (named, not by batch id; no first segment).
        var edit = Transaction(family: .inet, table: "zonewall")
        var known: [String: NamedSet] = [:]
        for s in sets {
            known[s.name] = s.declaration
            edit.changes.append(.deleteElements(set: s.name, ElementList(s.elements.prefix(700))))
            edit.changes.append(.addElements(set: s.name, ElementList(s.elements.suffix(700))))
        }
        Self.expectSameBytes(edit, known: known)

        // Decoding: libnftnl (`nftnl_set_elems_nlmsg_parse`) and the fast path read the same
        // kernel elements from every element message, and those are what was encoded.
        let shapes = Dictionary(uniqueKeysWithValues: sets.map { ($0.name, SetShape($0)) })
        // A dump read straight into element lists (`ElementCollector.add(elementsOf:)`, which
        // skips per-element values for concatenated sets) reads back every set as it was written,
        // and as the element-by-element path reads it.
        var fast = shapes.mapValues { ElementCollector(shape: $0) }, slow = fast
        for (index, op) in batch.operations.enumerated() {
            guard case .elements(let chunk) = op else { continue }
            let message = NetlinkMessage.split(dumpForm(Array(batch.bytes[batch.offsets[index]..<batch.offsets[index + 1]]))[...])[0]
            let decoder = TableDecoder(family: .inet, strict: false)
            #expect(fast[chunk.set]!.add(elementsOf: message, decoder) == 0)
            #expect(decoder.kernelElements(message, shape: shapes[chunk.set]!) { slow[chunk.set]!.add($0) } == 0)
        }
        for s in sets {
            let read = fast[s.name]!.finish()
            #expect(read == s.elements.sortedByKey(), "\(s.name)")
            #expect(read == slow[s.name]!.finish(), "\(s.name)")
        }
        for (index, op) in batch.operations.enumerated() {
            guard case .elements(let chunk) = op else { continue }
            let bytes = dumpForm(Array(batch.bytes[batch.offsets[index]..<batch.offsets[index + 1]]))
            let message = NetlinkMessage.split(bytes[...])[0]
            let shape = shapes[chunk.set]!
            var viaLibrary: [KernelElement] = [], direct: [KernelElement] = []
            var decoder = TableDecoder(family: .inet, strict: false)
            decoder.elementPath = .libnftnl
            #expect(decoder.kernelElements(message, shape: shape) { viaLibrary.append($0) } == 0)
            decoder.elementPath = .direct
            #expect(decoder.kernelElements(message, shape: shape) { direct.append($0) } == 0)
            #expect(viaLibrary == direct, "\(chunk.set)")
            var expected: [KernelElement] = []
            var k = 0
            SetElementCodec.forEachPart(of: chunk.elements, shape: shape, adding: true, firstSegment: chunk.firstSegment) { part in
                if chunk.parts.contains(k) { expected.append(SetElementCodec.kernelElement(part, shape: shape)) }
                k += 1
            }
            // The open-interval flag travels as user data, which neither decoder reads back.
            #expect(viaLibrary.map { var e = $0; e.isOpenInterval = false; return e } ==
                    expected.map { var e = $0; e.isOpenInterval = false; return e }, "\(chunk.set)")
        }
    }
    /// The kernel's interval tree dumps from the highest key down; the collector reverses such a
    /// dump instead of sorting it. Whatever the arrival order (descending, ascending, shuffled,
    /// or descending with one pair swapped), the list read is the one written: adjacent ranges,
    /// single addresses, an open interval, and map data that must stay with its start.
    @Test func collectorReadsTheSameListInAnyArrivalOrder() {
        var elements: [SetElement] = []
        var a: UInt64 = 0xC633_6400  // 198.51.100.0
        for i in 0..<300 {
            let width: UInt64 = i % 3 == 0 ? 0 : UInt64(i % 5)
            elements.append(SetElement(key: [ValueRange(Value(a, width: 4), Value(a + width, width: 4))],
                                       data: .verdict(i % 4 == 0 ? .accept : .jump("z_\(i % 7)"))))
            a += width + (i % 2 == 0 ? 1 : 3)  // every other range starts right after the last
        }
        elements.append(SetElement(key: [ValueRange(Value(0xFFFF_FF00, width: 4), .max(width: 4))], data: .verdict(.drop)))
        let set = NamedSet(name: "src_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: elements)
        let shape = SetShape(set)
        let parts = SetElementCodec.kernelElements(set.elements, shape: shape)
        var rng = SystemRandomNumberGenerator()
        var swapped = Array(parts.reversed())
        swapped.swapAt(10, 11)
        for (name, order) in [("descending", Array(parts.reversed())), ("ascending", parts),
                              ("shuffled", parts.shuffled(using: &rng)), ("one pair swapped", swapped)] {
            var collector = ElementCollector(shape: shape)
            for e in order { collector.add(e) }
            #expect(collector.finish() == set.elements.sortedByKey(), "\(name)")
        }
    }
    /// `holds` asks the kernel for every start, and for each end that no start of the whole set
    /// sits on (the kernel's lookup cannot find those). The set in key order is walked with one
    /// cursor, out of order it is hashed; a stage's slice asks the same either way.
    @Test func lookupsAskForEndsThatNoStartSitsOn() {
        var elements: [SetElement] = []
        var a: UInt64 = 0xCB00_7100  // 203.0.113.0
        for i in 0..<200 {
            let width = UInt64(i % 4)
            elements.append(SetElement(key: [ValueRange(Value(a, width: 4), Value(a + width, width: 4))], data: .verdict(.jump("z_\(i % 5)"))))
            a += width + (i % 3 == 0 ? 1 : 2)
        }
        let sorted = NamedSet(name: "src_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: elements)
        var rng = SystemRandomNumberGenerator()
        var shuffled = sorted
        shuffled.elements = ElementList(elements.shuffled(using: &rng))  // the initializer would sort them
        #expect(sorted.elements.isSortedByKey && !shuffled.elements.isSortedByKey)
        let starts = Set(elements.map { $0.key[0].lo.low })
        let shape = SetShape(sorted)
        for slice in [0..<200, 50..<120] {
            let stage = ElementList(elements[slice])
            let viaCursor = RawElementLookup(stage, of: sorted, shape: shape)!
            let viaHash = RawElementLookup(stage, of: shuffled, shape: shape)!
            #expect(viaCursor.parts.map { "\($0.kind)\($0.index)" } == viaHash.parts.map { "\($0.kind)\($0.index)" })
            var expected: [String] = []
            for (k, e) in elements[slice].enumerated() {
                expected.append("start\(k)")
                if !starts.contains(e.key[0].hi.low + 1) { expected.append("end\(k)") }
            }
            #expect(viaCursor.parts.map { "\($0.kind)\($0.index)" } == expected, "\(slice)")
        }
    }
}
