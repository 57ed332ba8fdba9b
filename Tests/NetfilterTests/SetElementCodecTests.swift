import CNetfilter
@testable import Netfilter
import Ruleset
import Testing

@Suite("Set elements: model ranges <-> kernel intervals")
struct SetElementCodecTests {
    let v4 = SetShape(keyType: [.ipv4Address], isInterval: true)
    let v6 = SetShape(keyType: [.ipv6Address], isInterval: true)
    let map4 = SetShape(keyType: [.ipv4Address], dataType: .verdict, isInterval: true)
    let concat = SetShape(keyType: [.ipv4Address, .inetProtocol, .inetService], isInterval: true)

    /// A verdict map where one range's verdict could not be named (data nil from the decoder)
    /// still decodes, and that range differs from every desired element.
    @Test func mapStartWithoutDataDecodesWithoutTrapping() {
        let kernel = [
            KernelElement(key: [V.v4("192.0.2.0")], data: .verdict(.jump("web"))),
            KernelElement(key: [V.v4("192.0.2.16")], isIntervalEnd: true),
            KernelElement(key: [V.v4("192.0.2.32")]),
            KernelElement(key: [V.v4("192.0.2.48")], isIntervalEnd: true),
        ]
        let elements = Array(SetElementCodec.elements(from: kernel, shape: map4))
        #expect(elements.count == 2)
        #expect(elements[0] == SetElement(key: [V.net("192.0.2.0/28")], data: .verdict(.jump("web"))))
        #expect(elements[1].key == [V.net("192.0.2.32/28")] && elements[1].data != nil)
        #expect(elements[1].data != .verdict(.jump("web")))
    }

    /// A catch-all element (nft's `*`: a flag, no key) is counted, not passed on as an element,
    /// so that callers can tell the set is not one zonewall wrote.
    @Test func keylessElementsAreCounted() {
        var w = NetlinkWriter(capacity: 256)
        let m = w.beginMessage(type: UInt16(NFNL_SUBSYS_NFTABLES) << 8 | NFT_MSG_NEWSETELEM.u16, flags: 0, seq: 0, family: Family.inet.rawValue)
        w.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: "zonewall")
        w.put(NFTA_SET_ELEM_LIST_SET.u16, string: "members_v4")
        let list = w.beginNest(NFTA_SET_ELEM_LIST_ELEMENTS.u16)
        let keyed = w.beginNest(NFTA_LIST_ELEM.u16)
        w.put(NFTA_SET_ELEM_KEY.u16) { $0.put(NFTA_DATA_VALUE.u16, bytes: [192, 0, 2, 5]) }
        w.endNest(keyed)
        let catchAll = w.beginNest(NFTA_LIST_ELEM.u16)
        w.put(NFTA_SET_ELEM_FLAGS.u16, u32: NFT_SET_ELEM_CATCHALL.u32)
        w.endNest(catchAll)
        w.endNest(list)
        w.endMessage(m)
        let message = NetlinkMessage.split(w.bytes[...])[0]
        var seen: [KernelElement] = []
        let keyless = TableDecoder(family: .inet, strict: false).kernelElements(message, shape: SetShape(keyType: [.ipv4Address], isInterval: false)) {
            seen.append($0)
        }
        #expect(keyless == 1)
        #expect(seen.map(\.key) == [[V.v4("192.0.2.5")]])
    }

    @Test func prefixBecomesStartAndEnd() {
        let k = SetElementCodec.kernelElements([SetElement(key: [V.net("10.0.0.0/24")])], shape: v4)
        #expect(k == [
            KernelElement(key: [V.v4("10.0.0.0")]),
            KernelElement(key: [V.v4("10.0.1.0")], isIntervalEnd: true),
        ])
    }

    @Test func rangeEndingAtMaximumHasNoEndElementAndIsOpen() {
        let k = SetElementCodec.kernelElements([SetElement(key: [V.net("255.255.255.0/24")])], shape: v4)
        #expect(k == [KernelElement(key: [V.v4("255.255.255.0")], isOpenInterval: true)])
        let all = SetElementCodec.kernelElements([SetElement(key: [V.net("::/0")])], shape: v6)
        #expect(all == [KernelElement(key: [V.v6("::")], isOpenInterval: true)])
    }

    @Test func firstSegmentAddsEndAtZeroOnlyForNewSets() {
        let e: ElementList = [SetElement(key: [V.net("192.0.2.0/28")], data: .verdict(.jump("web")))]
        let fresh = SetElementCodec.kernelElements(e, shape: map4, firstSegment: true)
        #expect(fresh == [
            KernelElement(key: [V.v4("0.0.0.0")], isIntervalEnd: true),
            KernelElement(key: [V.v4("192.0.2.0")], data: .verdict(.jump("web"))),
            KernelElement(key: [V.v4("192.0.2.16")], isIntervalEnd: true),
        ])
        #expect(SetElementCodec.kernelElements(e, shape: map4, firstSegment: false).count == 2)
        // A set whose first range starts at zero needs no first segment.
        let zero = SetElementCodec.kernelElements([SetElement(key: [V.net("0.0.0.0/8")])], shape: v4, firstSegment: true)
        #expect(zero.count == 2 && !zero[0].isIntervalEnd)
    }

    @Test func concatenatedRangesUseKeyEnd() {
        let e = SetElement(key: [V.net("192.0.2.0/28"), V.proto(6), V.port(0, 65535)])
        let k = SetElementCodec.kernelElements([e], shape: concat)
        #expect(k == [KernelElement(key: [V.v4("192.0.2.0"), V.u8(6), V.u16(0)],
                                    keyEnd: [V.v4("192.0.2.15"), V.u8(6), V.u16(65535)])])
    }

    @Test func decodingInvertsEncodingIncludingEdgeCases() {
        let sets: [(SetShape, [SetElement])] = [
            (v4, ["0.0.0.0/8", "10.0.0.0/24", "10.0.1.0/24", "192.0.2.5", "198.51.100.7-198.51.100.20", "255.255.255.0/24"]
                .map { SetElement(key: [V.net($0)]) }),
            (v4, [SetElement(key: [V.net("0.0.0.0/0")])]),
            (v6, ["::1", "2001:db8::/32", "ffff::/16"].map { SetElement(key: [V.net($0)]) }),
            (map4, [SetElement(key: [V.net("10.0.0.0/8")], data: .verdict(.goto("x"))),
                    SetElement(key: [V.net("11.0.0.0/8")], data: .verdict(.accept))]),
            (concat, [SetElement(key: [V.net("198.51.100.10"), V.proto(6), V.port(8000, 8099)]),
                      SetElement(key: [V.net("0.0.0.0/0"), V.proto(17), V.port(53)])]),
        ]
        for (shape, elements) in sets {
            for firstSegment in [false, true] {
                var kernel = SetElementCodec.kernelElements(ElementList(elements), shape: shape, firstSegment: firstSegment)
                kernel.reverse()  // the kernel's rbtree lists elements in descending order
                #expect(Array(SetElementCodec.elements(from: kernel, shape: shape)) == elements.sorted())
            }
        }
    }

    /// The decoder's copy-free value reading agrees with `Value(bytes:)`, in both byte orders.
    @Test func decoderValuesMatchValueFromBytes() {
        let bytes: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x99]
        for width in 1...16 {
            for start in [0, 1] {
                let slice = bytes[start..<(start + width)]
                #expect(TableDecoder.value(slice, bigEndian: true) == Value(bytes: slice))
                #expect(TableDecoder.value(slice, bigEndian: false) == Value(bytes: slice.reversed()))
            }
        }
    }

    @Test func orphanEndElementsAreIgnored() {
        let k = [KernelElement(key: [V.v4("0.0.0.0")], isIntervalEnd: true),
                 KernelElement(key: [V.v4("9.0.0.0")], isIntervalEnd: true),
                 KernelElement(key: [V.v4("10.0.0.0")]),
                 KernelElement(key: [V.v4("10.0.0.1")], isIntervalEnd: true)]
        #expect(SetElementCodec.elements(from: k, shape: v4) == [SetElement(key: [V.net("10.0.0.0")])])
    }
}
