import Foundation
import Revocation
import Testing
import ZonePolicy
@testable import Conntrack

/// The ctnetlink decoder behind the `conntrack` fuzz target: a real kernel dump (the seed corpus,
/// captured in a namespace) decodes to the entries created, and damaged bytes give a typed
/// error naming what failed, never a trap. Reproducers the fuzzer found are corpus files checked here too.
@Suite("Conntrack decoder: kernel dump, damage, fuzz reproducers")
struct ConntrackFuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/Corpus/conntrack").standardizedFileURL
    static func seed(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: corpus.appendingPathComponent(name)))
    }
    static func v4(_ s: String) -> UInt128 { IPPrefix.parse(s)!.address }

    /// A dump of the entries `conntrack -I` created (see the README's fuzzing section): TCP,
    /// UDP, ICMP, IPv6, a DNAT'd flow and one in conntrack zone 7.
    @Test func decodesAKernelDump() throws {
        let entries = try decodeConntrackMessages(try Self.seed("kernel-dump"))
        #expect(entries.count == 7)
        #expect(entries.allSatisfy { $0.id != 0 })
        let byText = Dictionary(entries.map { ("\($0.sourceText) \($0.destinationText) \($0.protoAndPort)", $0) }, uniquingKeysWith: { a, _ in a })
        let tcp = try #require(byText["192.0.2.10 203.0.113.5 (proto: \"tcp\", port: \"5432\")"])
        #expect(tcp.sourcePort == 40000 && tcp.destinationPort == 5432 && tcp.zone == 0)
        #expect(byText["192.0.2.11 203.0.113.53 (proto: \"udp\", port: \"53\")"] != nil)
        let icmp = try #require(byText["192.0.2.12 203.0.113.5 (proto: \"icmp\", port: \"type 8\")"])
        #expect(icmp.icmpID == 77 && icmp.icmpCode == 0)
        #expect(byText["2001:db8::1 2001:db8::2 (proto: \"tcp\", port: \"443\")"]?.sourcePort == 40001)
        #expect(byText["2001:db8::1 2001:db8::2 (proto: \"icmpv6\", port: \"type 128\")"]?.icmpID == 9)
        // DNAT: the filter saw the reply's source, 10.0.0.5:8080.
        let nat = try #require(byText["192.0.2.13 10.0.0.5 (proto: \"tcp\", port: \"8080\")"])
        #expect(nat.destination == Self.v4("198.51.100.1") && nat.destinationPort == 80)
        #expect(byText["192.0.2.14 203.0.113.5 (proto: \"tcp\", port: \"22\")"]?.zone == 7)
    }

    @Test func everyTruncationIsATypedError() throws {
        let bytes = try Self.seed("kernel-entry-01")
        for cut in 1..<bytes.count {
            #expect(throws: ConntrackDecodeError.self, "cut at \(cut)") { try decodeConntrackMessages(Array(bytes[..<cut])) }
        }
    }

    static func attribute(_ type: UInt16, _ payload: [UInt8], nested: Bool = false) -> [UInt8] {
        let a = withUnsafeBytes(of: UInt16(4 + payload.count).littleEndian, Array.init)
            + withUnsafeBytes(of: (type | (nested ? 0x8000 : 0)).littleEndian, Array.init) + payload
        return a + [UInt8](repeating: 0, count: (4 - a.count % 4) % 4)
    }
    static func message(family: UInt8 = 2, _ attributes: [UInt8]) -> [UInt8] {
        let body: [UInt8] = [family, 0, 0, 0] + attributes
        return withUnsafeBytes(of: UInt32(16 + body.count).littleEndian, Array.init) + [0, 1, 2, 0] + [UInt8](repeating: 0, count: 8) + body
    }
    static func tuple(_ type: UInt16 = 1, ip: [UInt8]? = nil, proto: [UInt8]? = nil) -> [UInt8] {
        attribute(type, attribute(1, ip ?? (attribute(1, [192, 0, 2, 1]) + attribute(2, [192, 0, 2, 2])), nested: true)
                  + attribute(2, proto ?? (attribute(1, [6]) + attribute(2, [0x9c, 0x40]) + attribute(3, [0, 22])), nested: true), nested: true)
    }

    @Test func aWellFormedMessageDecodes() throws {
        let e = try #require(try decodeConntrackMessages(Self.message(Self.tuple() + Self.attribute(12, [0, 0, 0, 5]))).first)
        #expect(e.sourceText == "192.0.2.1" && e.destinationPort == 22 && e.translatedDestinationPort == 22 && e.id == 5)
        #expect(try decodeConntrackMessages(Self.message(family: 7, Self.tuple())).isEmpty, "other families are skipped")
    }

    /// Each kind of damage, and the words its error uses.
    @Test(arguments: [
        (message([]), "CTA_TUPLE_ORIG: missing"),
        (message(tuple(ip: attribute(1, [192, 0, 2]) + attribute(2, [192, 0, 2, 2]))), "CTA_TUPLE_ORIG/CTA_TUPLE_IP/CTA_IP_V4_SRC: 3 bytes, expected 4"),
        (message(tuple(ip: attribute(3, [UInt8](repeating: 1, count: 16)) + attribute(4, [UInt8](repeating: 2, count: 16)))), "no IPv4 source and destination"),
        (message(tuple(proto: attribute(2, [0, 1]))), "CTA_PROTO_NUM: missing"),
        (message(tuple(proto: attribute(1, [6, 0]))), "CTA_PROTO_NUM: 2 bytes, expected 1"),
        (message(tuple(proto: attribute(1, [6]))), "protocol 6 without source and destination ports"),
        (message(tuple() + attribute(18, [0, 0, 7])), "CTA_ZONE: 3 bytes, expected 2"),
        (message(tuple() + [40, 0, 1, 0]), "length 40, but 4 bytes remain"),
        (message(tuple() + [1, 0, 1, 0]), "length 1"),
        (message(tuple() + [0, 0]), "2 bytes, expected 4"),
        ([8, 0, 0, 0] + [UInt8](repeating: 0, count: 12), "length 8 is shorter than the header"),
    ] as [([UInt8], String)])
    func damageIsATypedError(bytes: [UInt8], words: String) {
        do {
            _ = try decodeConntrackMessages(bytes)
            Issue.record("decoded; expected an error with \(words)")
        } catch {
            #expect(error.description.contains(words), "\(error)")
        }
    }

    /// Every corpus file (the kernel dump and the fuzzer's reproducers) decodes or throws.
    @Test func everyCorpusFileDecodesOrThrows() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        #expect(names.count >= 8)
        for name in names {
            guard let entries = try? decodeConntrackMessages(try Self.seed(name)) else { continue }
            for e in entries { _ = (e.flow, e.sourceText, e.destinationText, e.protoAndPort) }
        }
    }
}
