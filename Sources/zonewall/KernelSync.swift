import Foundation
import Netfilter
import Ruleset
import ZoneCompiler

/// Comparing what the kernel holds with what the policy compiles to.
///
/// The kernel lists sets and chains in its own order; the comparisons here do not depend on it.
enum KernelSync {
    /// The table name zonewall owns, as nft writes it.
    static var tableName: String { "\(ZoneCompiler.family) \(ZoneCompiler.tableName)" }

    /// Order-insensitive equality of sets, chains and elements; rule order inside a chain counts.
    static func equivalent(_ actual: Table?, _ desired: Table) -> Bool {
        actual?.isEquivalent(to: desired) ?? false
    }

    /// The transaction that brings `actual` (nil when absent) to `desired`; `Transaction.diff`
    /// already lines sets and chains up by name.
    static func transaction(from actual: Table?, to desired: Table) -> Transaction {
        Transaction.diff(from: actual, to: desired)
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
