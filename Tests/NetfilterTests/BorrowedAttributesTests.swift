import CNetfilter
@testable import Netfilter
import Testing
import TestSupport

/// The decoders of large dumps walk attributes through `BorrowedAttributes` (pointers, no
/// reference counting); everything else through `NetlinkAttributes`. Both must see the same
/// attributes in any bytes, damaged ones included.
@Suite struct BorrowedAttributesTests {
    /// What a walk saw: each attribute's raw type and payload, and its nested walk, to `depth`.
    indirect enum Walked: Equatable {
        case attribute(rawType: UInt16, payload: [UInt8], nested: [Walked])
    }

    static func owned(_ a: NetlinkAttributes, depth: Int) -> [Walked] {
        a.map { .attribute(rawType: $0.rawType, payload: Array($0.payload), nested: depth > 0 ? owned($0.nested, depth: depth - 1) : []) }
    }

    static func borrowed(_ a: BorrowedAttributes, depth: Int) -> [Walked] {
        a.map { .attribute(rawType: $0.rawType, payload: Array($0.payload), nested: depth > 0 ? borrowed($0.nested, depth: depth - 1) : []) }
    }

    static func written(_ walked: [Walked]) -> [UInt8] {
        var out: [UInt8] = []
        for case .attribute(let rawType, let payload, _) in walked {
            withUnsafeBytes(of: UInt16(4 + payload.count)) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: rawType) { out.append(contentsOf: $0) }
            out.append(contentsOf: payload)
            while out.count % 4 != 0 { out.append(0) }
        }
        return out
    }

    /// A well-formed attribute list: random types and payloads, some of them nests.
    static func attributes(_ rng: inout SplitMix64, depth: Int) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<Int.random(in: 0...5, using: &rng) {
            let nested = depth > 0 && Bool.random(using: &rng)
            let payload = nested ? attributes(&rng, depth: depth - 1)
                                 : (0..<Int.random(in: 0...21, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let type = UInt16.random(in: 1...40, using: &rng) | (nested ? UInt16(NLA_F_NESTED) : 0)
            let length = UInt16(4 + payload.count)
            withUnsafeBytes(of: length) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: type) { out.append(contentsOf: $0) }
            out.append(contentsOf: payload)
            while out.count % 4 != 0 { out.append(0) }
        }
        return out
    }

    @Test func bothWalksSeeTheSameAttributesInAnyBytes() {
        var rng = SplitMix64(seed: 0x2B0D)
        for round in 0..<2_000 {
            var bytes = Self.attributes(&rng, depth: 3)
            // Most rounds damage the list: a byte changed, the end cut off, or both.
            if round % 4 != 0, !bytes.isEmpty {
                if Bool.random(using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                if Bool.random(using: &rng) { bytes.removeLast(Int.random(in: 0...bytes.count, using: &rng)) }
            }
            // Start the slice past a prefix, as a message's attributes start past its header.
            let framed = [0, 0, 0, 0] + bytes
            let owned = Self.owned(NetlinkAttributes(framed[4...]), depth: 3)
            let borrowed = framed.withUnsafeBytes { raw in
                Self.borrowed(BorrowedAttributes(bytes: UnsafeRawBufferPointer(rebasing: raw[4...])), depth: 3)
            }
            #expect(owned == borrowed, "round \(round)")
            // An undamaged list is walked to its end: its attributes, written out again, are it.
            if round % 4 == 0 { #expect(Self.written(owned) == bytes, "round \(round)") }
        }
    }

    @Test func typedAccessorsAgree() {
        // NFTA_SET_ELEM_FLAGS (3) holding NFT_SET_ELEM_INTERVAL_END, big endian, then a nest.
        let bytes: [UInt8] = [8, 0, 3, 0, 0, 0, 0, 1,
                              12, 0, 0x01, 0x80, 8, 0, 1, 0, 0xc0, 0, 2, 0x01]
        let owned = Array(NetlinkAttributes(bytes[...]))
        bytes.withUnsafeBytes { raw in
            let borrowed = Array(BorrowedAttributes(bytes: raw))
            #expect(borrowed.count == 2 && owned.count == 2)
            #expect(borrowed[0].type == 3 && borrowed[0].u32 == NFT_SET_ELEM_INTERVAL_END.u32)
            #expect(borrowed[0].u32 == owned[0].u32)
            #expect(borrowed[1].type == 1 && borrowed[1].type == owned[1].type)
            #expect(borrowed[1].nested[1].map { Array($0.payload) } == owned[1].nested[1].map { Array($0.payload) })
            #expect(Array(borrowed[1].nested[1]!.payload) == [0xc0, 0, 2, 0x01])
        }
    }
}
