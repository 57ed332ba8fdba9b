import Foundation
@testable import Netfilter
import Ruleset
import Testing

/// A compiler-sized rule set: 10,000 chains, 20,000 sets and 100,000 prefixes.
/// Opt-in (`ZW_BENCH=1`): it takes a few seconds and a lot of kernel memory.
@Suite("Scale benchmark")
struct ScaleBenchmark {
    static func table(chains: Int = 10_000, prefixes: Int = 100_000) -> Table {
        var sets: [NamedSet] = []
        var regular: [Chain] = []
        var vmap: [SetElement] = []
        let perSet = prefixes / (2 * chains)
        var next = UInt64(0x0A00_0000)
        for c in 0..<chains {
            let name = "zone\(c)"
            var v4: [SetElement] = [], v6: [SetElement] = []
            for i in 0..<perSet {
                v4.append(SetElement(key: [ValueRange(Value(next, width: 4), Value(next + 255, width: 4))]))
                let hi = UInt64(0x2001_0db8_0000_0000) + UInt64(c)
                v6.append(SetElement(key: [ValueRange(Value(high: hi, low: UInt64(i) << 32, width: 16),
                                                      Value(high: hi, low: UInt64(i) << 32 | 0xffff_ffff, width: 16))]))
                next += 256
            }
            vmap.append(SetElement(key: [v4[0].key[0]], data: .verdict(.jump(name))))
            sets.append(NamedSet(name: "\(name)_v4", keyType: [.ipv4Address], flags: .interval, elements: v4))
            sets.append(NamedSet(name: "\(name)_v6", keyType: [.ipv6Address], flags: .interval, elements: v6))
            regular.append(Chain(name: name, rules: [
                Rule([.lookup([.ipDaddr], set: "\(name)_v4", negated: false), .verdict(.accept)]),
                Rule([.lookup([.ip6Daddr], set: "\(name)_v6", negated: false), .verdict(.accept)]),
            ]))
        }
        sets.append(NamedSet(name: "src_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: vmap))
        let forward = Chain(name: "forward", base: BaseChain(hook: .forward), rules: [
            Rule([.match(.ctState, .anyBit(of: Value(6, width: 4))), .verdict(.accept)]),
            Rule([.verdictMap([.ipSaddr], map: "src_v4")]),
        ])
        return Table(family: .inet, name: "zonewall", chains: regular + [forward], sets: sets)
    }

    @Test(needsRoot, .enabled(if: ProcessInfo.processInfo.environment["ZW_BENCH"] != nil))
    func largeRuleset() throws {
        if skipUnlessRoot() { return }
        let t = Self.table()
        let tx = Transaction.replace(with: t)
        let clock = ContinuousClock()
        var bytes = 0
        let encode = clock.measure { bytes = NetlinkKernel.batchSize(of: tx) }
        if let path = ProcessInfo.processInfo.environment["ZW_BENCH_SCRIPT"] {
            try NftText.replaceScript(t).write(toFile: path, atomically: true, encoding: .utf8)
        }
        print("large: \(t.chains.count) chains, \(t.sets.count) sets, \(t.elementCount) elements, \(bytes) bytes, encode \(encode)")
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let ru0 = rusage.now()
            let apply = try clock.measure { try kernel.apply(tx, expectingGeneration: nil) }
            let ru1 = rusage.now()
            var snap: KernelSnapshot?
            let dump = try clock.measure { snap = try kernel.dump(family: .inet, table: "zonewall") }
            let ru2 = rusage.now()
            print("large: apply \(apply) (user \(ru1.user - ru0.user)s sys \(ru1.sys - ru0.sys)s), dump \(dump) (user \(ru2.user - ru1.user)s sys \(ru2.sys - ru1.sys)s)")
            expectEqualTables(snap?.table, inKernelOrder(t))
            // Re-applying the same table (delete + create in one batch).
            let again = try clock.measure { try kernel.apply(tx, expectingGeneration: snap?.generation) }
            print("large: replace \(again)")
        }
    }
}

extension rusage {
    static func now() -> (user: Double, sys: Double) {
        var r = rusage()
        getrusage(RUSAGE_SELF.rawValue, &r)
        return (Double(r.ru_utime.tv_sec) + Double(r.ru_utime.tv_usec) / 1e6, Double(r.ru_stime.tv_sec) + Double(r.ru_stime.tv_usec) / 1e6)
    }
}
