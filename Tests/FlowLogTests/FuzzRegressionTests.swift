import Foundation
import Testing
import ZonePolicy
@testable import FlowLog

/// The NFLOG decoder behind the `nflog` fuzz target: real kernel bytes (the seed corpus, captured
/// in a namespace) decode to the packets sent, and damaged bytes give a typed error naming what
/// failed, never a trap. Reproducers the fuzzer found are corpus files checked here too.
@Suite("NFLOG decoder: kernel captures, damage, fuzz reproducers")
struct NFLogFuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/Corpus/nflog").standardizedFileURL
    static func seed(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: corpus.appendingPathComponent(name)))
    }
    static let received = Date(timeIntervalSince1970: 1_790_000_000)

    /// A read of the NFLOG socket (12 packets logged on the output hook, prefix `denied`, then NLMSG_DONE).
    @Test func decodesAKernelCapture() throws {
        let packets = try decodeNFLogMessages(try Self.seed("kernel-capture"), receivedAt: Self.received)
        #expect(packets.count == 12)
        #expect(packets.allSatisfy { $0.verdict == .denied && $0.hook == .output })
        let flows = Set(packets.map { "\($0.dst) \(ProtocolName.name($0.proto))/\($0.port.map(String.init) ?? "-")" })
        for expected in ["127.0.0.1 icmp/8", "::1 icmpv6/128", "127.0.0.1 udp/53", "::1 udp/53", "127.0.0.1 tcp/5432", "::1 tcp/5432"] {
            #expect(flows.contains(expected), "\(expected) in \(flows.sorted())")
        }
    }

    @Test func everyTruncationIsATypedError() throws {
        let bytes = try Self.seed("kernel-packet-01")
        for cut in 1..<bytes.count {
            #expect(throws: NFLogDecodeError.self, "cut at \(cut)") { try decodeNFLogMessages(Array(bytes[..<cut])) }
        }
    }

    /// A packet message with one attribute replaced by `attribute`.
    static func message(_ attributes: [[UInt8]]) -> [UInt8] {
        var body: [UInt8] = [2, 0, 0, 100]  // nfgenmsg: AF_INET, version 0, group 100
        for a in attributes { body += a + [UInt8](repeating: 0, count: (4 - a.count % 4) % 4) }
        let length = UInt32(16 + body.count)
        return withUnsafeBytes(of: length.littleEndian, Array.init) + [0, 4, 0, 0] + [UInt8](repeating: 0, count: 8) + body
    }
    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt16(4 + payload.count).littleEndian, Array.init) + withUnsafeBytes(of: type.littleEndian, Array.init) + payload
    }
    static let header = attribute(1, [0x08, 0x00, 3, 0])
    static let payload = attribute(9, [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 8, 0, 0, 0, 0, 0, 0, 0])
    static let prefix = attribute(10, Array("denied".utf8) + [0])

    @Test func aWellFormedMessageDecodes() throws {
        let p = try #require(try decodeNFLogMessages(Self.message([Self.header, Self.prefix, Self.payload]), receivedAt: Self.received).first)
        #expect(p.src.description == "192.0.2.1" && p.proto == 1 && p.port == 8 && p.hook == .output && p.time == Self.received)
    }

    /// Each kind of damage, and the words its error uses.
    @Test(arguments: [
        ([attribute(1, [8, 0, 3]), prefix, payload], "NFULA_PACKET_HDR: 3 bytes, expected 4"),
        ([attribute(1, [8, 0, 3, 0, 0]), prefix, payload], "NFULA_PACKET_HDR: 5 bytes, expected 4"),
        ([prefix, payload], "NFULA_PACKET_HDR: missing"),
        ([attribute(1, [8, 0, 9, 0]), prefix, payload], "hook 9 is not a netfilter hook"),
        ([header, attribute(10, Array("denied".utf8)), payload], "NFULA_PREFIX: not NUL-terminated"),
        ([header, prefix, attribute(3, [UInt8](repeating: 0xff, count: 16)), payload], "NFULA_TIMESTAMP"),
        ([header, prefix, attribute(3, [0, 0, 0, 0]), payload], "NFULA_TIMESTAMP: 4 bytes, expected 16"),
        ([header, prefix, attribute(12, [0, 0, 1]), payload], "NFULA_SEQ: 3 bytes, expected 4"),
        ([header, prefix], "NFULA_PAYLOAD: missing or empty"),
        ([header, prefix, [200, 0, 9, 0]], "length 200, but 4 bytes remain"),
        ([header, prefix, [2, 0, 9, 0]], "length 2"),
    ] as [([[UInt8]], String)])
    func damageIsATypedError(attributes: [[UInt8]], words: String) {
        do {
            _ = try decodeNFLogMessages(Self.message(attributes))
            Issue.record("decoded; expected an error with \(words)")
        } catch {
            #expect(error.description.contains(words), "\(error)")
        }
    }

    @Test func aMessageLongerThanItsInputIsATypedError() throws {
        var m = Self.message([Self.header, Self.prefix, Self.payload])
        m[0] = 0xff
        #expect(throws: NFLogDecodeError.self) { try decodeNFLogMessages(m) }
        #expect(throws: NFLogDecodeError.self) { try decodeNFLogMessages([16, 0, 0, 0]) }
        #expect(try decodeNFLogMessages([]).isEmpty)
    }

    /// Every corpus file (kernel captures and the fuzzer's reproducers) decodes or throws, and
    /// what decodes prints as `zonewall log --json` prints it.
    @Test func everyCorpusFileDecodesOrThrows() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        #expect(names.count >= 13)
        for name in names {
            guard let packets = try? decodeNFLogMessages(try Self.seed(name), receivedAt: Self.received) else { continue }
            for p in packets { _ = FlowRecord(packet: p, from: "world", to: "world", count: 1).jsonLine }
        }
    }
}
