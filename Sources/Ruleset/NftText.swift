import Dispatch

/// Renders the model as nft script text: what `zonewall plan` prints and what
/// `nft -f` accepts. Deterministic: equal models give byte-identical text.
public enum NftText {
    /// The script that atomically replaces `table` with this content: the knftables idiom
    /// `add table; delete table; table { … }`, which works whether or not the table exists.
    public static func replaceScript(_ table: Table, header: String? = nil) -> String {
        replaceScriptPieces(table, header: header).joined()
    }

    /// `replaceScript(table, header:)` in pieces that follow one another, for a writer that sends
    /// them out as they are: at 10,000 zones the script is 20 MB, and joining it copies all of it.
    public static func replaceScriptPieces(_ table: Table, header: String? = nil) -> [String] {
        var out = ""
        if let header { out += header.split(separator: "\n", omittingEmptySubsequences: false).map { "# \($0)" }.joined(separator: "\n") + "\n" }
        out += "table \(table.family) \(table.name)\n"
        out += "delete table \(table.family) \(table.name)\n"
        return [out] + renderPieces(table)
    }

    /// The table as an nft block. A large table's sets and chains are rendered in chunks spread
    /// over the CPUs and joined in order: printing 400,000 addresses is a quarter of `zonewall
    /// plan` at 10,000 zones.
    public static func render(_ table: Table) -> String {
        renderPieces(table).joined()
    }

    /// `render(table)` in pieces that follow one another: the opening lines, the table's items
    /// rendered concurrently in units of about equal cost, the closing brace. A unit is a run of
    /// whole items, or a slice of one large set's elements: at 10,000 zones the largest maps hold
    /// a quarter of all elements, and a unit per run of items would leave one CPU printing them.
    static func renderPieces(_ table: Table) -> [String] {
        let items = table.declarationOrder
        let units = RenderUnit.plan(items, units: 64)
        var pieces = [String](repeating: "", count: units.count)
        pieces.withUnsafeMutableBufferPointer { buffer in
            // Each iteration writes only its own slot.
            nonisolated(unsafe) let out = buffer
            DispatchQueue.concurrentPerform(iterations: units.count) { u in out[u] = render(units[u], of: items) }
        }
        return opening(table) + pieces + [closing]
    }

    /// A part of a table's text that is rendered on its own.
    enum RenderUnit {
        /// Items, whole.
        case items(Range<Int>)
        /// A slice of one set's elements; the first slice opens the set, the last closes it.
        case elements(item: Int, Range<Int>)

        static func cost(_ item: TableItem) -> Int {
            switch item {
            case .set(let s): 4 + s.elements.count
            case .chain(let c): 2 + c.rules.count
            }
        }

        /// About `units` units of equal cost (at least 512 each), in the items' order.
        static func plan(_ items: [TableItem], units: Int) -> [RenderUnit] {
            let target = max(512, items.reduce(0) { $0 + cost($1) } / max(1, units))
            var out: [RenderUnit] = []
            var start = 0, pending = 0
            for (i, item) in items.enumerated() {
                let c = cost(item)
                if case .set(let s) = item, c > target {
                    if start < i { out.append(.items(start ..< i)) }
                    let n = s.elements.count, slices = (n + target - 1) / target
                    for k in 0 ..< slices { out.append(.elements(item: i, n * k / slices ..< n * (k + 1) / slices)) }
                    start = i + 1
                    pending = 0
                    continue
                }
                pending += c
                if pending >= target {
                    out.append(.items(start ..< i + 1))
                    start = i + 1
                    pending = 0
                }
            }
            if start < items.count { out.append(.items(start ..< items.count)) }
            return out
        }
    }

    static func render(_ unit: RenderUnit, of items: [TableItem]) -> String {
        switch unit {
        case .items(let range):
            var text = ""
            for item in items[range] { text += render(item) }
            return text
        case .elements(let i, let range):
            guard case .set(let set) = items[i] else { return render(items[i]) }
            return render(set, elements: range)
        }
    }

    /// The table block's first lines (each a piece of its own), and its last.
    static func opening(_ table: Table) -> [String] {
        ["table \(table.family) \(table.name) {\n"] + (table.flags.isEmpty ? [] : ["\tflags \(table.flags)\n"])
    }
    static let closing = "}\n"

    static func render(_ item: TableItem) -> String {
        switch item {
        case .set(let s): render(s)
        case .chain(let c): render(c)
        }
    }

    /// The pieces `render(table)` joins, in order (the opening line, each set and chain, the
    /// closing brace): for hashing a large table's text without holding it whole.
    public static func forEachPiece(of table: Table, _ body: (String) -> Void) {
        opening(table).forEach(body)
        for item in table.declarationOrder { body(render(item)) }
        body(closing)
    }

    static func render(_ set: NamedSet) -> String {
        set.elements.isEmpty ? head(set) + "\t}\n" : render(set, elements: set.elements.indices)
    }

    /// Elements `range` of `set`, each after its separator: the slice that starts at the first
    /// element opens the set, the one that ends at the last closes it.
    static func render(_ set: NamedSet, elements range: Range<Int>) -> String {
        var text = range.lowerBound == 0 ? head(set) + "\t\telements = {" : ""
        for i in range {
            text += i == 0 ? " " : ",\n\t\t\t     "
            append(set.elements[i], of: set, to: &text)
        }
        if range.upperBound == set.elements.count { text += " }\n\t}\n" }
        return text
    }

    /// A set's declaration up to its elements.
    static func head(_ set: NamedSet) -> String {
        let keyword = set.isMap ? "map" : "set"
        var out = "\t\(keyword) \(set.name) {\n"
        if set.keyType == [.cgroupv2] {
            // No `type` names a cgroup id: nft declares such sets by `typeof` (and prints level 0).
            out += "\t\ttypeof socket cgroupv2 level 0" + (set.dataType.map { " : \($0.name)" } ?? "") + "\n"
        } else {
            var type = set.keyType.map(\.name).joined(separator: " . ")
            if let d = set.dataType { type += " : \(d.name)" }
            out += "\t\ttype \(type)\n"
        }
        var flags: [String] = []
        if set.flags.contains(.constant) { flags.append("constant") }
        if set.flags.contains(.interval) { flags.append("interval") }
        if set.flags.contains(.timeout) && set.timeout == nil { flags.append("timeout") }
        if set.flags.contains(.dynamic) { flags.append("dynamic") }
        if !flags.isEmpty { out += "\t\tflags \(flags.joined(separator: ","))\n" }
        if let t = set.timeout { out += "\t\ttimeout \(t)ms\n" }
        if let g = set.gcInterval { out += "\t\tgc-interval \(g)ms\n" }
        if let n = set.size { out += "\t\tsize \(n)\n" }
        if set.policy == .memory { out += "\t\tpolicy memory\n" }
        return out
    }

    /// One element as nft writes it, e.g. `192.0.2.0/28 . tcp . 443` or `198.51.100.10 : jump from_api`.
    public static func render(_ e: SetElement, of set: NamedSet) -> String {
        var s = ""
        append(e, of: set, to: &s)
        return s
    }

    static func append(_ e: SetElement, of set: NamedSet, to s: inout String) {
        for (i, (type, range)) in zip(set.keyType, e.key).enumerated() {
            if i > 0 { s += " . " }
            type.append(range, to: &s)
        }
        switch e.data {
        case .verdict(let v)?: s += " : "; append(v, to: &s)
        case .value(let v)?: s += " : "; s += (set.dataType ?? .integer).format(v)
        case nil: break
        }
    }

    /// `render(v)` appended to `s`: the chain name is not copied into a string of its own.
    static func append(_ v: Verdict, to s: inout String) {
        switch v {
        case .jump(let c): s += "jump "; s += c
        case .goto(let c): s += "goto "; s += c
        default: s += render(v)
        }
    }

    static func render(_ chain: Chain) -> String {
        var out = "\tchain \(chain.name) {\n"
        if let b = chain.base {
            let device = b.device.map { " device \"\($0)\"" } ?? ""
            out += "\t\ttype \(b.type.rawValue) hook \(b.hook)\(device) priority \(b.priority); policy \(render(b.policy));\n"
        }
        for r in chain.rules { out += "\t\t" + render(r) + "\n" }
        out += "\t}\n"
        return out
    }

    /// One rule as nft text.
    public static func render(_ rule: Rule) -> String {
        var parts = rule.expressions.map(render)
        if let c = rule.comment { parts.append("comment \"\(c)\"") }
        return parts.joined(separator: " ")
    }

    static func render(_ e: Expression) -> String {
        switch e {
        case .match(let sel, let cmp):
            let t = sel.dataType
            switch cmp {
            case .equal(let v): return "\(sel.rawValue) \(t.format(v))"
            case .notEqual(let v): return "\(sel.rawValue) != \(t.format(v))"
            case .inRange(let lo, let hi): return "\(sel.rawValue) \(t.format(lo))-\(t.format(hi))"
            case .anyBit(let mask): return "\(sel.rawValue) \(t.format(mask))"
            case .masked(let mask, let v): return "\(sel.rawValue) & \(t.format(mask)) == \(t.format(v))"
            }
        case .lookup(let sels, let set, let negated):
            return sels.map(\.rawValue).joined(separator: " . ") + (negated ? " != @" : " @") + set
        case .verdictMap(let sels, let map):
            return sels.map(\.rawValue).joined(separator: " . ") + " vmap @" + map
        case .counter:
            return "counter"
        case .limit(let rate, let burst):
            return "limit rate \(rate)/second burst \(burst) packets"
        case .log(let prefix):
            return "log prefix \"\(prefix)\""
        case .nflog(let group, let prefix):
            return "log prefix \"\(prefix)\" group \(group)"
        case .reject(.tcpReset):
            return "reject with tcp reset"
        case .reject(.icmpxPortUnreachable):
            return "reject with icmpx port-unreachable"
        case .setCtMarkField(let mask, let value):
            let m = DataType.mark
            return "ct mark set ct mark & \(m.format(Value(UInt64(~mask), width: 4))) | \(m.format(Value(UInt64(value), width: 4)))"
        case .verdict(let v):
            return render(v)
        }
    }

    public static func render(_ v: Verdict) -> String {
        switch v {
        case .accept: "accept"
        case .drop: "drop"
        case .continue: "continue"
        case .return: "return"
        case .jump(let c): "jump \(c)"
        case .goto(let c): "goto \(c)"
        }
    }
}

/// A table's objects in an order in which each is created after everything it refers to.
public enum TableItem: Sendable {
    case set(NamedSet)
    case chain(Chain)
}

extension Table {
    /// Plain sets first (rules refer to them); then regular chains and verdict maps, each after
    /// the maps and chains it refers to (a zone chain looks up a map that jumps to other chains);
    /// base chains last, so a hook is attached only once all it reaches exists.
    public var declarationOrder: [TableItem] {
        var out = sets.filter { $0.dataType != .verdict }.map(TableItem.set)
        let maps = Dictionary(sets.filter { $0.dataType == .verdict }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let regular = Dictionary(chains.filter { $0.base == nil }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var placed = Set<String>()  // "c:NAME" and "m:NAME"

        func target(_ v: Verdict) -> String? {
            switch v {
            case .jump(let c), .goto(let c): c
            default: nil
            }
        }
        // Depth-first: a reference is placed before what refers to it. The kernel refuses loops,
        // so the depth is that of the jumps (a handful); a loop would only stop the recursion.
        func placeChain(_ name: String) {
            guard let chain = regular[name], placed.insert("c:" + name).inserted else { return }
            for rule in chain.rules {
                for e in rule.expressions {
                    switch e {
                    case .verdictMap(_, let map): placeMap(map)
                    case .verdict(let v): if let c = target(v) { placeChain(c) }
                    default: break
                    }
                }
            }
            out.append(.chain(chain))
        }
        func placeMap(_ name: String) {
            guard let map = maps[name], placed.insert("m:" + name).inserted else { return }
            var targets: [String] = []
            for case .verdict(let v) in map.elements.dataValues { if let c = target(v) { targets.append(c) } }
            for c in targets.sorted() { placeChain(c) }
            out.append(.set(map))
        }
        for chain in chains where chain.base == nil { placeChain(chain.name) }
        for set in sets where set.dataType == .verdict { placeMap(set.name) }
        out += chains.filter { $0.base != nil }.map(TableItem.chain)
        return out
    }
}
