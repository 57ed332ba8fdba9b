import CNetfilter
import Foundation
@testable import Netfilter
import Ruleset
import Testing

/// The decoders behind the fuzz targets, on messages zonewall's own encoder writes (which have
/// the layout of a dump's replies) and on damaged copies of them.
@Suite("Fuzz entry points: dump and notification decoders")
struct FuzzEntryPointTests {
    /// The table as dump replies would carry it: its skeleton, then its elements addressed by set name.
    static func dumpBytes(_ table: Table) -> [UInt8] {
        var skeleton = table
        skeleton.sets = table.sets.map(\.declaration)
        var elements = Transaction(family: table.family, table: table.name)
        for s in table.sets where !s.elements.isEmpty {
            elements.changes.append(.addElements(set: s.name, s.elements))
            elements.setDeclarations[s.name] = s.declaration
        }
        var out: [UInt8] = []
        for tx in [Transaction.create(skeleton), elements] where !tx.isEmpty {
            let batch = BatchEncoder(family: table.family, table: table.name, knownSets: elements.setDeclarations)
                .encode(tx, generation: nil, commit: true, firstSeq: 1)
            // Without the batch begin and end messages.
            out += batch.bytes[batch.offsets[1]..<batch.offsets[batch.offsets.count - 1]]
        }
        return dumpForm(out)
    }

    @Test func decodesWhatTheEncoderWrites() throws {
        var table = Fixtures.table
        table.flags = [.dormant]
        let c = try #require(table.chains.firstIndex { !$0.rules.isEmpty })
        table.chains[c].rules[0].userData = [1, 2, 3]
        let decoded = try #require(try decodeTableDump(Self.dumpBytes(table)))
        #expect(decoded.flags == [.dormant])
        #expect(decoded.chain(named: table.chains[c].name)?.rules[0].userData == [1, 2, 3])
        #expect(decoded.isEquivalent(to: table))
        var plain = table
        plain.flags = []
        #expect(!decoded.isEquivalent(to: plain), "a dormant table differs from the compiled one")
    }

    @Test func setAndChainAttributesRoundTrip() throws {
        var table = Fixtures.table
        let i = try #require(table.sets.firstIndex { $0.dataType == nil })
        table.sets[i].timeout = 3_600_000
        table.sets[i].flags.insert(.timeout)
        table.sets[i].gcInterval = 1000
        table.sets[i].size = 65536
        table.sets[i].policy = .memory
        let c = try #require(table.chains.firstIndex { $0.base != nil })
        table.chains[c].base!.priority = -5
        table.chains[c].base!.policy = .drop
        table.chains[c].userData = [9, 9]
        let decoded = try #require(try decodeTableDump(Self.dumpBytes(table)))
        #expect(decoded.sets[i].declaration == table.sets[i].declaration)
        #expect(decoded.chain(named: table.chains[c].name) == table.chains[c])
    }

    @Test func truncatedInputIsATypedError() throws {
        let bytes = Self.dumpBytes(Fixtures.table)
        #expect(throws: NetfilterError.self) { try decodeTableDump(Array(bytes.dropLast(3))) }
        #expect(throws: NetfilterError.self) { try decodeChangeNotifications([1, 2, 3, 4, 5]) }
        #expect(try decodeTableDump([]) == nil)
    }

    /// SplitMix64: the same damaged copies on every run, so a trap found once is found again.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Thousands of damaged copies (`ZW_FUZZ_ITERATIONS` to run more): none may trap.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func damagedDumpsNeverTrap(seed: UInt64) {
        let bytes = Self.dumpBytes(Fixtures.table)
        var rng = SeededGenerator(state: seed)
        let iterations = ProcessInfo.processInfo.environment["ZW_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 3000
        var decoded = 0, rejected = 0
        for _ in 0..<iterations {
            var b = bytes
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let k = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[k] = UInt8.random(in: 0...255, using: &rng)
                case 1: b[k] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                default: b = Array(b.prefix(max(k, 1)))
                }
                if b.isEmpty { break }
            }
            do {
                _ = try decodeTableDump(b)
                _ = try decodeChangeNotifications(b)
                decoded += 1
            } catch {
                rejected += 1
            }
        }
        #expect(decoded + rejected == iterations)
        #expect(decoded > 0 && rejected > 0)
    }
}
