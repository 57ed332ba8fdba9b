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
        if actual.flags != desired.flags {
            let dormant = actual.flags.contains(.dormant) && !desired.flags.contains(.dormant) ? " (dormant: it filters nothing)" : ""
            out.append("table flags are \(actual.flags), the policy wants \(desired.flags)\(dormant)")
        }
        if actual.userData != desired.userData { out.append("table user data differs") }
        let declared = Set(desired.objects)
        for o in actual.objects.sorted() where !declared.contains(o) {
            out.append("\(o) is not in the policy (zonewall declares no \(o.kind == "flowtable" ? "flowtables" : "stateful objects"))")
        }
        let have = Dictionary(actual.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let want = Dictionary(desired.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for s in desired.sets {
            guard let a = have[s.name] else { out.append("set \(s.name) is missing"); continue }
            if a.declaration != s.declaration { out.append("set \(s.name) is declared differently: \(Self.describe(a, s))") }
            let ae = Set(a.elements), de = Set(s.elements)
            let missing = de.subtracting(ae).count, extra = ae.subtracting(de).count
            if missing + extra > 0 { out.append("set \(s.name): \(missing) element(s) missing, \(extra) extra") }
        }
        for s in actual.sets where want[s.name] == nil { out.append("set \(s.name) is not in the policy") }
        let haveC = Dictionary(actual.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let wantC = Dictionary(desired.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for c in desired.chains {
            guard let a = haveC[c.name] else { out.append("chain \(c.name) is missing"); continue }
            if a.base != c.base { out.append("chain \(c.name) has a different \(Self.describe(a.base, c.base))") }
            if a.flags != c.flags || a.userData != c.userData { out.append("chain \(c.name) has different flags or user data") }
            if a.rules.count != c.rules.count {
                out.append("chain \(c.name): rules differ (\(a.rules.count) in the kernel, \(c.rules.count) compiled)")
            } else if let k = a.rules.indices.first(where: { a.rules[$0] != c.rules[$0] }) {
                let what = a.rules[k].expressions == c.rules[k].expressions ? "comment or user data" : "expressions"
                out.append("chain \(c.name): rule \(k + 1) differs in its \(what)")
            }
        }
        for c in actual.chains where wantC[c.name] == nil { out.append("chain \(c.name) is not in the policy") }
        return out
    }

    /// Which base chain attributes differ, e.g. `policy (drop in the kernel, accept compiled)`.
    static func describe(_ actual: BaseChain?, _ desired: BaseChain?) -> String {
        guard let a = actual, let d = desired else { return actual == nil ? "kind (regular in the kernel, base compiled)" : "kind (base in the kernel, regular compiled)" }
        var parts: [String] = []
        if a.type != d.type { parts.append("type (\(a.type.rawValue) in the kernel, \(d.type.rawValue) compiled)") }
        if a.hook != d.hook { parts.append("hook (\(a.hook) in the kernel, \(d.hook) compiled)") }
        if a.priority != d.priority { parts.append("priority (\(a.priority) in the kernel, \(d.priority) compiled)") }
        if a.policy != d.policy { parts.append("policy (\(NftText.render(a.policy)) in the kernel, \(NftText.render(d.policy)) compiled)") }
        if a.device != d.device { parts.append("device (\(a.device ?? "none") in the kernel, \(d.device ?? "none") compiled)") }
        return parts.joined(separator: ", ")
    }

    /// Which attributes of a set's declaration differ, e.g. `flags, timeout`.
    static func describe(_ a: NamedSet, _ d: NamedSet) -> String {
        var parts: [String] = []
        if a.keyType != d.keyType || a.dataType != d.dataType { parts.append("key or data type") }
        if a.flags != d.flags { parts.append("flags (0x\(String(a.flags.rawValue, radix: 16)) in the kernel, 0x\(String(d.flags.rawValue, radix: 16)) compiled)") }
        if a.timeout != d.timeout { parts.append("timeout (\(a.timeout.map { "\($0) ms" } ?? "none") in the kernel)") }
        if a.gcInterval != d.gcInterval { parts.append("gc interval") }
        if a.size != d.size { parts.append("size") }
        if a.policy != d.policy { parts.append("policy") }
        if a.userData != d.userData { parts.append("user data") }
        if a.elementExpressions != d.elementExpressions { parts.append("element expressions") }
        return parts.joined(separator: ", ")
    }

    /// Milliseconds since `start`, for summaries.
    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        return String(format: "%.1f ms", ms)
    }
}
