import Foundation
import Testing
import ZonePolicy
@testable import FlowLog

/// Decoding what NFLOG copies: typed values from good packets, nil (never a trap) from bad ones.
struct PacketDecoderTests {
    static let t = Date(timeIntervalSince1970: 1_790_000_000)

    /// An IPv4 header (no options) + 4 transport bytes.
    static func v4(src: [UInt8], dst: [UInt8], proto: UInt8, l4: [UInt8], fragment: UInt16 = 0) -> [UInt8] {
        [0x45, 0, 0, 40, 0, 0, UInt8(fragment >> 8), UInt8(fragment & 0xff), 64, proto, 0, 0] + src + dst + l4
    }

    @Test func decodesTCPOverIPv4() throws {
        let b = Self.v4(src: [192, 0, 2, 10], dst: [203, 0, 113, 5], proto: 6, l4: [0x9c, 0x40, 0x15, 0x38])
        let p = try #require(PacketDecoder.decode(prefix: "denied", hook: 2, payload: b, time: Self.t))
        #expect(p.verdict == .denied && p.hook == .forward)
        #expect(p.src.description == "192.0.2.10" && p.dst.description == "203.0.113.5")
        #expect(p.proto == 6 && p.port == 5432)
    }

    @Test func decodesICMPTypeAndKernelLogPrefix() throws {
        let b = Self.v4(src: [192, 0, 2, 10], dst: [203, 0, 113, 5], proto: 1, l4: [8, 0, 0, 0])
        let p = try #require(PacketDecoder.decode(prefix: "zonewall audit ", hook: 1, payload: b, time: Self.t))
        #expect(p.verdict == .audit && p.hook == .input && p.port == 8 && p.flow.isEchoRequest)
    }

    @Test func laterFragmentsHaveNoPort() throws {
        let b = Self.v4(src: [192, 0, 2, 10], dst: [203, 0, 113, 5], proto: 17, l4: [0, 53, 0, 53], fragment: 0x0010)
        let p = try #require(PacketDecoder.decode(prefix: "denied", hook: 2, payload: b, time: Self.t))
        #expect(p.proto == 17 && p.port == nil)
    }

    @Test func decodesUDPOverIPv6ThroughExtensionHeaders() throws {
        var b: [UInt8] = [0x60, 0, 0, 0, 0, 16, 0 /* hop-by-hop */, 64]
        b += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        b += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]
        b += [17, 0, 0, 0, 0, 0, 0, 0]  // hop-by-hop: next UDP, length 8
        b += [0x30, 0x39, 0x01, 0xbb]
        let p = try #require(PacketDecoder.decode(prefix: "audit", hook: 3, payload: b, time: Self.t))
        #expect(p.src.description == "2001:db8::1" && p.dst.description == "2001:db8::2")
        #expect(p.proto == 17 && p.port == 443 && p.hook == .output)
    }

    @Test func badInputNeverTraps() {
        #expect(PacketDecoder.decode(prefix: "denied", hook: 2, payload: [], time: Self.t) == nil)
        #expect(PacketDecoder.decode(prefix: "other", hook: 2, payload: Self.v4(src: [1, 2, 3, 4], dst: [5, 6, 7, 8], proto: 6, l4: [0, 0, 0, 0]), time: Self.t) == nil)
        #expect(PacketDecoder.decode(prefix: "denied", hook: 9, payload: Self.v4(src: [1, 2, 3, 4], dst: [5, 6, 7, 8], proto: 6, l4: [0, 0, 0, 0]), time: Self.t) == nil)
        // An IHL pointing past the end, and an IPv6 header cut short.
        #expect(PacketDecoder.decode(prefix: "denied", hook: 2, payload: [0x4f] + [UInt8](repeating: 0, count: 30), time: Self.t) == nil)
        #expect(PacketDecoder.decode(prefix: "denied", hook: 2, payload: [0x60] + [UInt8](repeating: 0, count: 20), time: Self.t) == nil)
        // Random bytes and every truncation of good packets: no trap, whatever comes out.
        var g = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let n = Int.random(in: 0...120, using: &g)
            var b = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            if !b.isEmpty { b[0] = [0x45, 0x46, 0x4f, 0x60, 0x61][Int.random(in: 0..<5, using: &g)] }
            if b.count > 6, b[0] >> 4 == 6 { b[6] = [0, 43, 44, 51, 60, 6, 17][Int.random(in: 0..<7, using: &g)] }
            _ = PacketDecoder.decode(prefix: "denied", hook: UInt8.random(in: 0...5, using: &g), payload: b, time: Self.t)
        }
        let good = Self.v4(src: [192, 0, 2, 10], dst: [203, 0, 113, 5], proto: 6, l4: [0x9c, 0x40, 0x15, 0x38])
        for n in 0..<good.count {
            let p = PacketDecoder.decode(prefix: "denied", hook: 2, payload: good.prefix(n), time: Self.t)
            #expect(n >= 20 || p == nil)
            if n >= 20 && n < 24 { #expect(p?.port == nil) }
        }
    }
}
