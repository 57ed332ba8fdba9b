import Foundation
import Netfilter
import Ruleset
import ZoneCompiler

/// Comparing what the kernel holds with what the policy compiles to.
///
/// The kernel lists sets and chains in its own order (declaration order, verdict maps after
/// regular chains), so comparisons and diffs line the dumped table up with the desired one first.
enum KernelSync {
    /// The table name zonewall owns, as nft writes it.
    static var tableName: String { "\(ZoneCompiler.family) \(ZoneCompiler.tableName)" }

    /// `actual` with its sets and chains in `desired`'s order when both have the same names;
    /// otherwise unchanged (the skeletons differ anyway).
    static func aligned(_ actual: Table, to desired: Table) -> Table {
        var out = actual
        if Set(actual.sets.map(\.name)) == Set(desired.sets.map(\.name)), actual.sets.count == desired.sets.count {
            let byName = Dictionary(actual.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            out.sets = desired.sets.map { byName[$0.name]! }
        }
        if Set(actual.chains.map(\.name)) == Set(desired.chains.map(\.name)), actual.chains.count == desired.chains.count {
            let byName = Dictionary(actual.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            out.chains = desired.chains.map { byName[$0.name]! }
        }
        out.sets = out.sets.map { var s = $0; s.elements.sort(); return s }
        return out
    }

    /// Order-insensitive equality of sets, chains and elements; rule order inside a chain counts.
    static func equivalent(_ actual: Table?, _ desired: Table) -> Bool {
        guard let actual else { return false }
        return aligned(actual, to: desired) == aligned(desired, to: desired)
    }

    /// The transaction that brings `actual` (nil when absent) to `desired`.
    static func transaction(from actual: Table?, to desired: Table) -> Transaction {
        Transaction.diff(from: actual.map { aligned($0, to: desired) }, to: desired)
    }

    /// Human-readable differences: missing/extra/changed sets and chains, element counts.
    static func differences(_ actual: Table?, _ desired: Table) -> [String] {
        guard let actual else { return ["table \(tableName) does not exist"] }
        var out: [String] = []
        let have = Dictionary(actual.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let want = Dictionary(desired.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for s in desired.sets {
            guard let a = have[s.name] else { out.append("set \(s.name) is missing"); continue }
            if a.declaration != s.declaration { out.append("set \(s.name) is declared differently") }
            let ae = Set(a.elements), de = Set(s.elements)
            let missing = de.subtracting(ae).count, extra = ae.subtracting(de).count
            if missing + extra > 0 { out.append("set \(s.name): \(missing) element(s) missing, \(extra) extra") }
        }
        for s in actual.sets where want[s.name] == nil { out.append("set \(s.name) is not in the policy") }
        let haveC = Dictionary(actual.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let wantC = Dictionary(desired.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for c in desired.chains {
            guard let a = haveC[c.name] else { out.append("chain \(c.name) is missing"); continue }
            if a.base != c.base { out.append("chain \(c.name) has a different hook, priority or policy") }
            if a.rules != c.rules { out.append("chain \(c.name): rules differ (\(a.rules.count) in the kernel, \(c.rules.count) compiled)") }
        }
        for c in actual.chains where wantC[c.name] == nil { out.append("chain \(c.name) is not in the policy") }
        return out
    }

    /// Milliseconds since `start`, for summaries.
    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        return String(format: "%.1f ms", ms)
    }
}
