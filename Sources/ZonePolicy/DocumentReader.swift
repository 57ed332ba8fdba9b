/// Walks one YAML document, turning shape errors into diagnostics with exact places.
///
/// It also enforces a node budget over the alias-expanded tree, so that an anchor/alias
/// "billion laughs" document is refused instead of being expanded.
///
/// A `what` argument names the node in a diagnostic. It is built only when there is one: the
/// reader visits every member of every zone, and most documents have no error.
struct DocumentReader {
    let path: String
    var diagnostics: [Diagnostic] = []
    /// Nodes left to visit before the document counts as an expansion bomb.
    private var budget: Int
    private(set) var exhausted = false

    /// Generous for real policies (a 100,000-member policy visits ~300,000 nodes).
    static let defaultBudget = 5_000_000

    init(path: String, budget: Int = DocumentReader.defaultBudget) {
        self.path = path
        self.budget = budget
    }

    func location(_ node: Node) -> SourceLocation {
        let m = node.mark
        return SourceLocation(path: path, line: m.line, column: m.column)
    }

    mutating func error(_ node: Node, _ message: String, hint: String? = nil) {
        if let alias {
            // The value was reached through an alias: the mistake is using it here.
            let note = "through \(alias.name); the value is written at \(location(node))"
            diagnostics.append(.error(alias.location, message, hint: hint.map { "\($0); \(note)" } ?? note))
            return
        }
        diagnostics.append(.error(location(node), message, hint: hint))
    }

    /// The document's text, to find aliases in (the tree holds the anchored nodes, not them).
    var text = "" {
        didSet { mayHaveAliases = text.utf8.contains(UInt8(ascii: "*")) }
    }
    /// False when the text has no `*` at all, so no alias: the checks per value and per list
    /// item (100,000s of members) are then skipped.
    private var mayHaveAliases = true
    /// The alias (`*name` and its place) the value being read was reached through, if any.
    typealias Alias = (location: SourceLocation, name: String)
    private(set) var alias: Alias?

    /// Call before reading `value`, the value of the mapping key `key`; pass what it returns to
    /// `leave`. A value written before its key was reached through an alias: errors in it are
    /// then reported at the alias, with the value's own place in a note.
    mutating func enter(_ value: Node, of key: Node) -> Alias? {
        enter(value, after: key)
    }

    /// Call before reading `item`, an item of the list `list`; pass what it returns to `leave`.
    /// An item written before its list (`ports: [*p, tcp/22]`) was reached through an alias,
    /// and errors in it are reported there, as for mapping values.
    mutating func enter(_ item: Node, in list: Node) -> Alias? {
        guard mayHaveAliases else { return alias }
        // Items come in the order they are written, so an item not after the one before it
        // (`[&r {…}, *r, *r]`) is an alias to an anchor in the same list.
        let i = item.mark
        let previous = lastItem.updateValue(i, forKey: list.mark)
        if let previous, i <= previous {
            return enter(item, after: list, force: true)
        }
        return enter(item, after: list)
    }

    /// The place of the last item read of each list (by the list's place).
    private var lastItem: [Mark: Mark] = [:]
    /// Where the last alias found was written: aliases are met in the order they are written,
    /// so the next one is searched for after it.
    private var aliasCursor: Mark?

    /// A node written before `place` (its key, its list) was reached through an alias, since an
    /// anchor always comes before its aliases; `force` when that is known otherwise.
    private mutating func enter(_ node: Node, after place: Node, force: Bool = false) -> Alias? {
        let saved = alias
        let n = node.mark, p = place.mark
        guard mayHaveAliases, alias == nil, force || n < p else { return saved }
        // From the place, or past the last alias found if that is later.
        var from = p
        if let c = aliasCursor, c >= from { from = Mark(line: c.line, column: c.column + 1) }
        let found = aliasAfter(from, named: anchorName(at: n)) ?? aliasAfter(from, named: nil)
        if let found { aliasCursor = Mark(line: found.location.line, column: found.location.column) }
        alias = found ?? (location(place), "an alias")
        return saved
    }

    mutating func leave(_ saved: Alias?) { alias = saved }

    /// The anchor's name when `mark` is where one is written (`&name`), as libyaml marks an
    /// anchored node.
    private func anchorName(at mark: Mark) -> String? {
        let lines = FileParser.yamlLines(text)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        let line = Array(lines[mark.line - 1].unicodeScalars)
        let i = mark.column - 1
        guard i >= 0, i < line.count, line[i] == "&" else { return nil }
        let name = Self.name(in: line, after: i)
        return name.isEmpty ? nil : name
    }

    /// The anchor or alias name after the `&` or `*` at `i`: up to a space or a flow indicator.
    private static func name(in line: [Unicode.Scalar], after i: Int) -> String {
        var j = i + 1
        while j < line.count, ![" ", "\t", ",", "[", "]", "{", "}"].contains(line[j]) { j += 1 }
        var name = String.UnicodeScalarView()
        name.append(contentsOf: line[(i + 1)..<j])
        return String(name)
    }

    /// The first alias written after `mark` (`*name` when a name is given, any otherwise), with
    /// its place.
    private func aliasAfter(_ mark: Mark, named wanted: String?) -> Alias? {
        let lines = FileParser.yamlLines(text)
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        for index in (mark.line - 1)..<min(lines.count, mark.line + 20) {
            let line = Array(lines[index].unicodeScalars)
            var i = index == mark.line - 1 ? mark.column - 1 : 0
            while i < line.count {
                if line[i] == "#" && (i == 0 || line[i - 1] == " ") { break }
                if line[i] == "*", i == 0 || [" ", "\t", ":", "[", "{", ",", "-"].contains(line[i - 1]) {
                    let name = Self.name(in: line, after: i)
                    if wanted == nil || wanted == name {
                        return (SourceLocation(path: path, line: index + 1, column: i + 1), "the alias *" + name)
                    }
                }
                i += 1
            }
        }
        return nil
    }

    /// Counts the expanded size of `node` and its nesting; false (with a diagnostic) when over
    /// budget or deeper than `maxDepth` collections.
    ///
    /// Iterative: the later passes recurse, and must only ever see shallow trees.
    mutating func checkExpansion(_ root: Node, maxDepth: Int = PolicyLimits.standard.depth) -> Bool {
        var stack = [(root, 0)]
        while let (n, depth) = stack.popLast() {
            budget -= 1
            if budget < 0 { return overBudget(root) }
            switch n {
            case .mapping, .sequence:
                if depth >= maxDepth {
                    error(n, "collections nested more than \(maxDepth) deep, the limit",
                          hint: "a policy needs about 5 levels; this looks like generated or hostile input")
                    return false
                }
            default: break
            }
            if let tag = Self.customTag(of: n) { reportCustomTag(tag, at: n) }
            // Scalars (most of a policy: keys and members) are counted here, not pushed.
            func visit(_ child: Node) {
                guard case .scalar(let s) = child else { stack.append((child, depth + 1)); return }
                budget -= 1
                if !s.tag.isEmpty, let tag = Self.customTag(of: child) { reportCustomTag(tag, at: child) }
            }
            switch n {
            case .mapping(let m): for (k, v) in m { visit(k); visit(v) }
            case .sequence(let s): for child in s { visit(child) }
            case .scalar: break
            }
        }
        return budget >= 0 || overBudget(root)
    }

    /// A tag outside YAML's core schema (`!include`, `!ref`) on a node; nil when it has none, a
    /// core one (`!!str`, `!!int`, …) or the non-specific `!` (a string), which the readers of
    /// values judge. Nothing here gives a custom tag a meaning, so it is refused rather than
    /// ignored: `members: !include web.yaml` must not quietly be the member "web.yaml".
    static func customTag(of node: Node) -> String? {
        let tag = node.tag
        return tag.isEmpty || tag == "!" || tag.hasPrefix(coreTagPrefix) ? nil : tag
    }

    private static let coreTagPrefix = "tag:yaml.org,2002:"

    private mutating func reportCustomTag(_ tag: String, at node: Node) {
        error(node, "YAML tag '\(tag)' is not supported",
              hint: "zonewall reads plain values and has no includes or references: remove the tag and write the value out")
    }

    /// A core tag other than `!!str` on a scalar read as text (`!!int web`, `!!binary …`): the
    /// value means something else to other YAML readers. Custom tags are reported by
    /// `checkExpansion`; both make the value unreadable here.
    private mutating func refusesTag(_ node: Node, _ s: Node.Scalar, what: () -> String) -> Bool {
        let tag = s.tag
        guard !tag.isEmpty, tag != "!", tag != Self.coreTagPrefix + "str" else { return false }
        if Self.customTag(of: node) == nil {
            error(node, "\(what()) must be a string, found '\(s.string)' tagged \(Self.shortTag(tag))",
                  hint: "write the value alone, without a tag")
        }
        return true
    }

    private mutating func overBudget(_ root: Node) -> Bool {
        exhausted = true
        error(root, "document expands to more than \(Self.defaultBudget) nodes through aliases; refusing to expand it",
              hint: "this looks like an alias expansion bomb (\"billion laughs\"); write the values out instead")
        return false
    }

    /// Whether the node is YAML null (`~`, `null`, or empty).
    static func isNull(_ node: Node) -> Bool {
        // `Node.tag` resolves the implicit tag; `Scalar.tag` stays "" (implicit) for plain scalars.
        // YAML 1.1/1.2 core null forms, checked directly: tag resolution runs a regular
        // expression per scalar, which dominated loading large policies.
        guard case .scalar(let s) = node, s.style == .plain else { return false }
        switch s.string {
        case "", "~", "null", "Null", "NULL": return true
        default: return false
        }
    }

    /// A mapping's entries as (key string, key node, value), reporting non-scalar keys,
    /// duplicate keys and keys outside `allowed` (a typo must never weaken a policy).
    mutating func entries(_ node: Node, what: @autoclosure () -> String, allowed: Set<String>?) -> [(key: String, keyNode: Node, value: Node)]? {
        guard case .mapping(let m) = node else {
            error(node, "\(what()) must be a mapping, found \(kind(node))")
            return nil
        }
        var seen = SeenKeys()
        var out: [(String, Node, Node)] = []
        out.reserveCapacity(m.count)
        for (k, v) in m {
            guard case .scalar(let ks) = k else {
                error(k, "keys in \(what()) must be plain names, found \(kind(k))")
                continue
            }
            let key = ks.string
            if key == "<<", ks.style == .plain {
                // YAML 1.1's merge key: not a policy key, and what it would merge is unknown here.
                error(k, "merge keys (<<) are not supported; write the keys out")
                continue
            }
            if let first = seen.insert(key, k) {
                error(k, "duplicate key '\(key)' in \(what())", hint: "first written at \(location(first))")
                continue
            }
            if let allowed, !allowed.contains(key) {
                let hint = Spelling.closest(to: key, in: allowed).map { "did you mean '\($0)'?" }
                    ?? "allowed keys: \(allowed.sorted().joined(separator: ", "))"
                error(k, "unknown key '\(key)' in \(what())", hint: hint)
                continue
            }
            out.append((key, k, v))
        }
        return out
    }

    /// Whether a mapping has a YAML merge key (`<<: *base`), already reported by `entries`: the
    /// keys it would have merged are not reported missing.
    static func hasMergeKey(_ node: Node) -> Bool {
        guard case .mapping(let m) = node else { return false }
        return m.contains { k, _ in
            if case .scalar(let s) = k { s.string == "<<" && s.style == .plain } else { false }
        }
    }

    /// A mapping's keys seen so far, with their nodes: a short list scanned for the few keys of a
    /// zone or a rule (no hashing, no allocation beyond the list), a dictionary past that.
    private struct SeenKeys {
        private var few: [(String, Node)] = []
        private var many: [String: Node]?

        /// Records `key`; the node of its first occurrence if it was seen before.
        mutating func insert(_ key: String, _ node: Node) -> Node? {
            if many == nil, few.count < 8 {
                if let first = few.first(where: { $0.0 == key }) { return first.1 }
                few.append((key, node))
                return nil
            }
            if many == nil { many = Dictionary(few, uniquingKeysWith: { a, _ in a }) }
            if let first = many![key] { return first }
            many![key] = node
            return nil
        }
    }

    /// A scalar's text; reports other kinds.
    mutating func string(_ node: Node, what: @autoclosure () -> String) -> String? {
        guard case .scalar(let s) = node, !Self.isNull(node) else {
            error(node, "\(what()) must be a string, found \(kind(node))")
            return nil
        }
        if !s.tag.isEmpty, refusesTag(node, s, what: what) { return nil }
        return s.string
    }

    /// Free text (a description, a reason): a quoted or plain string, not a plain number, boolean
    /// or null, which YAML reads as another type (`description: 123` is a number).
    mutating func text(_ node: Node, what: @autoclosure () -> String) -> String? {
        guard case .scalar(let s) = node, !Self.isNull(node) else {
            error(node, "\(what()) must be a string, found \(kind(node))")
            return nil
        }
        if !s.tag.isEmpty, refusesTag(node, s, what: what) { return nil }
        if s.style == .plain {
            switch s.resolvedType {
            case .int, .float, .bool:
                error(node, "\(what()) must be a string, found \(kind(node))", hint: "quote it to mean the text: \"\(s.string)\"")
                return nil
            default: break
            }
        }
        return s.string
    }

    /// A whole number in `range`, written as a plain decimal scalar: a quoted "100" is a string.
    /// Only `0` or a digit 1-9 followed by digits is a number here: no leading zeros (YAML 1.1
    /// readers such as PyYAML take `0100` as octal 64), no sign, no `_` separators and no explicit
    /// tag (`!!str 100`, `!!float 100`), so every YAML reader sees the value zonewall uses.
    /// `describe` names what the number counts, e.g. "an NFLOG group number".
    mutating func integer(_ node: Node, what: @autoclosure () -> String, describe: String, in range: ClosedRange<Int>) -> Int? {
        let expected = "\(describe) \(range.lowerBound)..\(range.upperBound)"
        // A quoted scalar carries the str tag too (libyaml's quoted_implicit); it is reported below.
        if case .scalar(let s) = node, s.style == .plain, !s.tag.isEmpty {
            if Self.customTag(of: node) != nil { return nil }  // reported by `checkExpansion`
            error(node, "\(what()) must be \(expected), found '\(s.string)' tagged \(Self.shortTag(s.tag))",
                  hint: "write the number alone, without a tag")
            return nil
        }
        guard case .scalar(let s) = node, !Self.isNull(node) else {
            error(node, "\(what()) must be \(expected), found \(kind(node))")
            return nil
        }
        guard s.style == .plain else {
            error(node, "\(what()) must be \(expected), found the string '\(s.string)'", hint: "write the number without quotes")
            return nil
        }
        let text = s.string
        let negative = text.hasPrefix("-")
        let digits = negative ? text.utf8.dropFirst() : text.utf8[...]
        guard Self.isPlainDecimal(digits), !(negative && digits.elementsEqual("0".utf8)) else {
            let isNumber = [.int, .float].contains(s.resolvedType)
            let decimalLike = !digits.isEmpty
                && digits.allSatisfy { ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "+") }
            let octal = !negative && digits.count > 1 && digits.first == UInt8(ascii: "0")
                && digits.allSatisfy { ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7")) || $0 == UInt8(ascii: "_") }
            let hint: String? = decimalLike
                ? "write it in plain decimal, without leading zeros, a sign or '_'" + (octal ? "; YAML 1.1 readers (PyYAML) take \(text) as an octal number" : "")
                : isNumber ? "write it in decimal" : nil
            error(node, "\(what()) must be \(expected), found \(kind(node))", hint: hint)
            return nil
        }
        // A negative number, or too many digits for an Int, is out of range, not "not a number".
        guard !negative, let n = Int(Substring(digits)), range.contains(n) else {
            error(node, "\(what()) must be \(expected), found \(text), out of range")
            return nil
        }
        return n
    }

    /// `0`, or a digit 1-9 followed by digits.
    private static func isPlainDecimal(_ digits: Substring.UTF8View) -> Bool {
        guard let first = digits.first else { return false }
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return false }
        return first != UInt8(ascii: "0") || digits.count == 1
    }

    /// `tag:yaml.org,2002:str` as it is written, `!!str`.
    private static func shortTag(_ tag: String) -> String {
        let prefix = "tag:yaml.org,2002:"
        return tag.hasPrefix(prefix) ? "!!" + tag.dropFirst(prefix.count) : tag
    }

    /// A strict boolean: `true` or `false`.
    mutating func bool(_ node: Node, what: @autoclosure () -> String) -> Bool? {
        if case .scalar(let s) = node, s.style != .plain {
            error(node, "\(what()) must be true or false, found the string '\(s.string)'", hint: "write true or false without quotes")
            return nil
        }
        guard case .scalar(let s) = node else {
            error(node, "\(what()) must be true or false, found \(kind(node))")
            return nil
        }
        // `!!str true` is the text "true" to every YAML reader; only `!!bool` (or no tag) is a boolean.
        let tag = s.tag
        if !tag.isEmpty && tag != "tag:yaml.org,2002:bool" {
            if Self.customTag(of: node) != nil { return nil }  // reported by `checkExpansion`
            error(node, "\(what()) must be true or false, found '\(s.string)' tagged \(Self.shortTag(tag))",
                  hint: "write true or false alone, without a tag")
            return nil
        }
        switch s.string {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            error(node, "\(what()) must be true or false, found '\(s.string)'")
            return nil
        }
    }

    /// A sequence's items; reports other kinds.
    mutating func sequence(_ node: Node, what: @autoclosure () -> String) -> [Node]? {
        guard case .sequence(let s) = node else {
            error(node, "\(what()) must be a list, found \(kind(node))", hint: "write it as [a, b] or as '- ' items")
            return nil
        }
        return Array(s)
    }

    /// A single scalar or a list of scalars, as `from:`/`to:` allow; each with the alias it was
    /// reached through, if any, for what is reported about it later (`location(_:through:)`,
    /// `error(_:through:_:hint:)`).
    mutating func oneOrMany(_ node: Node, what: @autoclosure () -> String) -> [(String, Node, Alias?)]? {
        if case .sequence(let s) = node {
            if s.isEmpty {
                error(node, "\(what()) must not be empty")
                return nil
            }
            var out: [(String, Node, Alias?)] = []
            for item in s {
                let saved = enter(item, in: node)
                defer { leave(saved) }
                if let str = string(item, what: "an item of \(what())") { out.append((str, item, alias)) }
            }
            return out
        }
        return string(node, what: what()).map { [($0, node, alias)] }
    }

    /// Where to report `node`: at the alias it was reached through, if any.
    func location(_ node: Node, through a: Alias?) -> SourceLocation { a?.location ?? location(node) }

    /// `error(node, message, hint:)` as if read through the alias `a`.
    mutating func error(_ node: Node, through a: Alias?, _ message: String, hint: String? = nil) {
        let saved = alias
        alias = a
        error(node, message, hint: hint)
        alias = saved
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(let s):
            if Self.isNull(node) { "nothing (null)" }
            else if s.style == .plain && s.resolvedType == .int { "the number \(s.string)" }
            else if s.style == .plain && s.resolvedType == .bool { "the boolean \(s.string)" }
            else { "'\(s.string)'" }
        }
    }
}

/// "Did you mean …?" suggestions by edit distance.
public enum Spelling {
    /// The candidate closest to `word`, if it is close enough to be a plausible typo.
    public static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        var best: (String, Int)?
        for c in candidates.sorted() {
            let d = distance(word, c)
            if d < (best?.1 ?? Int.max) { best = (c, d) }
        }
        guard let (c, d) = best, d <= max(2, min(word.count, c.count) / 3) else { return nil }
        return c
    }

    /// Levenshtein distance.
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count), cur = prev
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
