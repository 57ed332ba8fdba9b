import TestSupport
import Testing
import ZonePolicy
@testable import ZoneCompiler

struct FlattenerTests {
    func p(_ s: String) -> IPPrefix { IPPrefix.parse(s)! }

    @Test func nestedPrefixesLongestWins() {
        let out = IntervalFlattener.flatten([(p("203.0.113.0/24"), 0), (p("203.0.113.5"), 1), (p("203.0.113.16/29"), 2)])
        let base: UInt128 = 0xCB00_7100
        #expect(out == [
            LabeledInterval(lo: base, hi: base + 4, zone: 0),
            LabeledInterval(lo: base + 5, hi: base + 5, zone: 1),
            LabeledInterval(lo: base + 6, hi: base + 15, zone: 0),
            LabeledInterval(lo: base + 16, hi: base + 23, zone: 2),
            LabeledInterval(lo: base + 24, hi: base + 255, zone: 0),
        ])
    }

    @Test func adjacentSameZoneMergesAndEdgesOfSpace() {
        let out = IntervalFlattener.flatten([(p("0.0.0.0/1"), 0), (p("128.0.0.0/1"), 0), (p("::/0"), 1), (p("ffff::/16"), 2)])
        #expect(out.first == LabeledInterval(lo: 0, hi: 0xFFFF_FFFF, zone: 0))
        let v6 = IntervalFlattener.flatten([(p("::/0"), 1), (p("ffff::/16"), 2)])
        #expect(v6.count == 2)
        #expect(v6.last?.hi == .max)
        #expect(v6.last?.zone == 2)
    }

    @Test func disjointIntervalsCoverExactlyTheMembers() {
        var g = SplitMix64(seed: 42)
        for _ in 0..<200 {
            let members = (0..<8).map { i in (RandomPolicy.member(&g), i % 3) }.filter { $0.0.family == .ipv4 }
            var seen = Set<IPPrefix>()
            let unique = members.filter { seen.insert($0.0).inserted }
            let flat = IntervalFlattener.flatten(unique)
            for (a, b) in zip(flat, flat.dropFirst()) { #expect(a.hi < b.lo) }
            // Every member address classifies into the longest containing prefix.
            for (prefix, _) in unique {
                for addr in [prefix.first, prefix.last] {
                    let best = unique.filter { $0.0.contains(addr) }.max { $0.0.length < $1.0.length }!
                    let hit = flat.first { $0.lo <= addr && addr <= $0.hi }
                    #expect(hit?.zone == best.1)
                }
            }
        }
    }
}
