import Foundation
import Yams

/// The outcome of loading a policy: the policy when there are no errors, and every diagnostic.
public struct LoadResult: Sendable {
    public var policy: Policy?
    public var diagnostics: [Diagnostic]

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { diagnostics.filter { $0.severity == .warning } }
}

/// A policy file's text.
public struct PolicyFile: Sendable {
    public var path: String
    public var contents: String

    public init(path: String, contents: String) {
        self.path = path
        self.contents = contents
    }
}

/// Reads a policy directory into a validated `Policy`.
public enum PolicyLoader {
    /// Loads every `*.yaml` and `*.yml` file directly inside `directory`.
    ///
    /// With `concurrently`, files are parsed on every CPU at once: faster, but each parse in
    /// flight holds its file's YAML tree. The daemon parses one file at a time, to keep its
    /// peak memory low.
    public static func load(directory: String, concurrently: Bool = true, cache: ParseCache? = nil) -> LoadResult {
        let dirLocation = SourceLocation(path: directory, line: 0, column: 0)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else {
            return LoadResult(diagnostics: [.error(dirLocation, "policy directory does not exist")])
        }
        guard isDir.boolValue else {
            return LoadResult(diagnostics: [.error(dirLocation, "policy path is not a directory")])
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            return LoadResult(diagnostics: [.error(dirLocation, "cannot read policy directory: \(error.localizedDescription)")])
        }
        let policyNames = names.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }.sorted()
        guard !policyNames.isEmpty else {
            return LoadResult(diagnostics: [.error(dirLocation, "policy directory has no *.yaml or *.yml files")])
        }
        var files: [PolicyFile] = []
        var diagnostics: [Diagnostic] = []
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        for name in policyNames {
            let path = base + name
            let fileLocation = SourceLocation(path: path, line: 0, column: 0)
            guard let data = FileManager.default.contents(atPath: path) else {
                diagnostics.append(.error(fileLocation, "cannot read file (permission denied, or not a regular file)"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                diagnostics.append(.error(fileLocation, "file is not valid UTF-8"))
                continue
            }
            files.append(PolicyFile(path: path, contents: text))
        }
        var result = parse(files, concurrently: concurrently, cache: cache)
        result.diagnostics = (diagnostics + result.diagnostics).sortedByLocation
        if result.diagnostics.hasErrors { result.policy = nil }
        return result
    }

    /// Parses and validates policy files given as text (tests use this directly).
    public static func parse(_ files: [PolicyFile], concurrently: Bool = true, cache: ParseCache? = nil) -> LoadResult {
        // Files are independent until they are resolved together: parse them on every CPU.
        let sorted = files.sorted(by: { $0.path < $1.path })
        let parseOne: @Sendable (PolicyFile) -> (FileFragment, [Diagnostic]) = { file in
            let hash = cache.map { _ in ParseCache.hash(file.contents) } ?? 0
            if let hit = cache?.lookup(file, hash: hash) { return hit }
            var parser = FileParser(path: file.path)
            let fragment = parser.parse(file.contents)
            cache?.store(file, hash: hash, (fragment, parser.reader.diagnostics))
            return (fragment, parser.reader.diagnostics)
        }
        cache?.keep(only: Set(files.map(\.path)))
        let parsed = concurrently ? concurrentMap(sorted, parseOne) : sorted.map(parseOne)
        let fragments = parsed.map(\.0)
        var diagnostics = parsed.flatMap(\.1)
        var resolver = PolicyResolver(fragments: fragments)
        // Warnings about an invalid policy mislead ("zone has no members" when its member was
        // rejected): they are given only once the errors are fixed.
        let policy = resolver.resolve(warnings: !diagnostics.hasErrors)
        diagnostics += resolver.diagnostics
        diagnostics = diagnostics.sortedByLocation
        return LoadResult(policy: diagnostics.hasErrors ? nil : policy, diagnostics: diagnostics)
    }
}

/// `items.map(body)`, with the calls spread over the CPUs; the order of the results is kept.
func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], _ body: @Sendable (T) -> R) -> [R] {
    guard items.count > 1 else { return items.map(body) }
    var results = [R?](repeating: nil, count: items.count)
    results.withUnsafeMutableBufferPointer { buffer in
        // Each iteration writes only its own slot.
        nonisolated(unsafe) let out = buffer
        DispatchQueue.concurrentPerform(iterations: items.count) { i in out[i] = body(items[i]) }
    }
    return results.map { $0! }
}

/// A name as written, with its place: zones and endpoints are resolved once all files are read.
struct NameRef: Hashable {
    var name: String
    var location: SourceLocation
}

/// One endpoint of an expectation before resolution.
enum PartyRef {
    case name(NameRef)
    case address(IPPrefix, SourceLocation)
}

/// What one file contributes, before cross-file checks.
struct FileFragment {
    struct RawRule {
        var from: [NameRef]
        var to: [NameRef]
        var ports: [PortSpec]
        var description: String?
        var location: SourceLocation
    }
    struct RawExpectation {
        var from: PartyRef
        var to: PartyRef
        var port: PortSpec
        var verdict: FlowVerdict
        var location: SourceLocation
    }
    var zones: [Zone] = []
    var rules: [RawRule] = []
    var settings: Settings?
    var expectations: [RawExpectation] = []
}

/// Turns one file's YAML into a fragment, reporting every shape error.
struct FileParser {
    var reader: DocumentReader

    init(path: String) { reader = DocumentReader(path: path) }

    static let topKeys: Set = ["zones", "allow", "settings", "expect"]
    static let zoneKeys: Set = ["description", "members"]
    static let ruleKeys: Set = ["from", "to", "ports", "description"]
    static let settingsKeys: Set = ["denied", "log_denied"]
    static let expectKeys: Set = ["from", "to", "port", "verdict"]

    mutating func parse(_ text: String) -> FileFragment {
        var fragment = FileFragment()
        if let place = Self.aliasKey(in: text) {
            // Yams expands an alias key fully while checking for duplicate keys, before our
            // expansion budget can run: refuse the construct outright.
            reader.diagnostics.append(.error(SourceLocation(path: reader.path, line: place.line, column: place.column),
                                             "an alias cannot be used as a mapping key",
                                             hint: "write the key out; alias keys can hide an expansion bomb"))
            return fragment
        }
        let root: Node?
        do {
            // Tags are not resolved while parsing: the default resolver runs regular expressions
            // on every scalar, even to hash mapping keys. Plain text is all the reader needs;
            // `DocumentReader.kind` resolves tags only to word an error.
            let parser = try Parser(yaml: text, resolver: .basic)
            root = try parser.singleRoot()
        } catch let e as YamlError {
            reader.diagnostics.append(Self.diagnostic(for: e, path: reader.path))
            return fragment
        } catch {
            reader.diagnostics.append(.error(SourceLocation(path: reader.path, line: 1, column: 1), "cannot parse YAML: \(error)"))
            return fragment
        }
        guard let root, !DocumentReader.isNull(root) else { return fragment }  // an empty file adds nothing
        guard reader.checkExpansion(root) else { return fragment }
        guard let entries = reader.entries(root, what: "the top level", allowed: Self.topKeys) else { return fragment }
        for (key, keyNode, value) in entries {
            switch key {
            case "zones": fragment.zones = parseZones(value)
            case "allow": fragment.rules = parseRules(value)
            case "settings": fragment.settings = parseSettings(value, at: reader.location(keyNode))
            case "expect": fragment.expectations = parseExpectations(value)
            default: break
            }
        }
        return fragment
    }

    /// The place of the first alias written in key position (`*a: …`, `? *a`, `{*a: …}`), if any.
    static func aliasKey(in text: String) -> (line: Int, column: Int)? {
        guard text.contains("*") else { return nil }
        let pattern = #"(^|[\s{,?\-])(\*[^\s,\[\]{}:]+\s*:(\s|$))|(\?\s+\*)"#
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines]) else { return nil }
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = String(line)
            if !l.contains("*") || l.trimmingCharacters(in: .whitespaces).hasPrefix("#") { continue }
            let range = NSRange(l.startIndex..., in: l)
            if let m = regex.firstMatch(in: l, range: range) {
                let hit = m.range(at: 2).location != NSNotFound ? m.range(at: 2) : m.range(at: 4)
                let col = l.utf16.distance(from: l.utf16.startIndex, to: l.utf16.index(l.utf16.startIndex, offsetBy: hit.location))
                return (i + 1, col + 1)
            }
        }
        return nil
    }

    /// Maps Yams/libyaml errors to a diagnostic at the place libyaml reports.
    static func diagnostic(for e: YamlError, path: String) -> Diagnostic {
        switch e {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let ctx = context.map { "\($0.text) " } ?? ""
            return .error(SourceLocation(path: path, line: mark.line, column: mark.column), "YAML syntax: \(ctx)\(problem)")
        case .reader(let problem, let offset, _, _):
            return .error(SourceLocation(path: path, line: 1, column: 1),
                          "YAML reader: \(problem)" + (offset.map { " at byte \($0)" } ?? ""))
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams refuses the mapping before `DocumentReader.entries` sees it, and its context
            // text is the whole file; it marks only the first occurrence, so find the second.
            let key = duplicates.first ?? "?"
            let first = SourceLocation(path: path, line: context.mark.line, column: context.mark.column)
            guard let again = repeatedBlockKey(key, after: first, in: context.text) else {
                return .error(first, "duplicate key '\(key)'", hint: "it is written again later in the same mapping; write each key once")
            }
            return .error(again, "duplicate key '\(key)'", hint: "first written at \(first)")
        default:
            return .error(SourceLocation(path: path, line: 1, column: 1), "YAML: \(e)")
        }
    }

    /// The next sibling of the block-mapping key at `first` that repeats it, or nil (e.g. in flow style).
    static func repeatedBlockKey(_ key: String, after first: SourceLocation, in text: String) -> SourceLocation? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let indent = first.column - 1
        guard first.line >= 1, indent >= 0 else { return nil }
        for index in first.line..<lines.count {
            let line = lines[index].unicodeScalars
            let rest = line.drop { $0 == " " }
            if rest.isEmpty || rest.first == "#" || rest.first == "\r" { continue }
            let lead = line.count - rest.count
            if lead < indent { return nil }  // the mapping ended
            guard lead == indent else { continue }
            for token in [key, "\"\(key)\"", "'\(key)'"] where String(rest).hasPrefix(token) {
                if String(rest).dropFirst(token.count).drop(while: { $0 == " " || $0 == "\t" }).first == ":" {
                    return SourceLocation(path: first.path, line: index + 1, column: first.column)
                }
            }
        }
        return nil
    }

    mutating func parseZones(_ node: Node) -> [Zone] {
        if DocumentReader.isNull(node) { return [] }
        guard let entries = reader.entries(node, what: "zones", allowed: nil) else { return [] }
        var zones: [Zone] = []
        for (name, keyNode, value) in entries {
            let location = reader.location(keyNode)
            var zone = Zone(name: name, members: [], location: location)
            if DocumentReader.isNull(value) {
                zones.append(zone)
                continue
            }
            guard let fields = reader.entries(value, what: "zone '\(name)'", allowed: Self.zoneKeys) else { continue }
            for (key, _, v) in fields {
                switch key {
                case "description":
                    zone.description = reader.string(v, what: "a zone's description")
                case "members":
                    if DocumentReader.isNull(v) { continue }
                    guard let items = reader.sequence(v, what: "members of zone '\(name)'") else { continue }
                    zone.members.reserveCapacity(zone.members.count + items.count)  // no growth slack: 100,000s of members
                    for item in items {
                        guard let text = reader.string(item, what: "a member of zone '\(name)'") else { continue }
                        if let p = parsePrefix(text, item) { zone.members.append(Located(p, at: reader.location(item))) }
                    }
                default: break
                }
            }
            zones.append(zone)
        }
        return zones
    }

    /// An address or prefix, rejecting host bits with the corrected prefix as the hint.
    mutating func parsePrefix(_ text: String, _ node: Node) -> IPPrefix? {
        guard let p = IPPrefix.parse(text.trimmingCharacters(in: .whitespaces)) else {
            reader.error(node, "'\(text)' is not an IPv4 or IPv6 address or prefix",
                         hint: "write an address (192.0.2.10, 2001:db8::10) or a prefix (192.0.2.0/24, 2001:db8::/64)")
            return nil
        }
        guard !p.hasHostBits else {
            reader.error(node, "prefix '\(text)' has host bits set", hint: "did you mean '\(p.normalized)'?")
            return nil
        }
        return p
    }

    mutating func parseRules(_ node: Node) -> [FileFragment.RawRule] {
        if DocumentReader.isNull(node) { return [] }
        guard let items = reader.sequence(node, what: "allow") else { return [] }
        var rules: [FileFragment.RawRule] = []
        for item in items {
            let location = reader.location(item)
            guard let fields = reader.entries(item, what: "an allow rule", allowed: Self.ruleKeys) else { continue }
            var from: [NameRef]?, to: [NameRef]?, ports: [PortSpec]?, description: String?
            var ok = true
            for (key, _, v) in fields {
                switch key {
                case "from", "to":
                    let names = reader.oneOrMany(v, what: "'\(key)'")?.map { NameRef(name: $0.0, location: reader.location($0.1)) }
                    if names == nil { ok = false }
                    if key == "from" { from = names } else { to = names }
                case "ports":
                    ports = parsePorts(v)
                    if ports == nil { ok = false }
                case "description":
                    description = reader.string(v, what: "a rule's description")
                default: break
                }
            }
            // A key that is present but bad already has its own error.
            for key in ["from", "to"] where !fields.contains(where: { $0.key == key }) {
                reader.error(item, "allow rule has no '\(key)'")
                ok = false
            }
            if ports == nil && !fields.contains(where: { $0.key == "ports" }) {
                reader.error(item, "allow rule has no 'ports'", hint: "list what it admits, e.g. ports: [tcp/443]; write [any] for all traffic")
                ok = false
            }
            if ok, let from, let to, let ports {
                rules.append(.init(from: from, to: to, ports: ports, description: description, location: location))
            }
        }
        return rules
    }

    mutating func parsePorts(_ node: Node) -> [PortSpec]? {
        if DocumentReader.isNull(node) {
            reader.error(node, "'ports' is empty", hint: "list what the rule admits, e.g. [tcp/443]; write [any] for all traffic")
            return nil
        }
        guard let items = reader.sequence(node, what: "'ports'") else { return nil }
        guard !items.isEmpty else {
            reader.error(node, "'ports' is empty", hint: "list what the rule admits, e.g. [tcp/443]; write [any] for all traffic")
            return nil
        }
        var specs: [PortSpec] = []
        var ok = true
        for item in items {
            guard let text = reader.string(item, what: "a port spec") else { ok = false; continue }
            switch PortSpec.parse(text) {
            case .success(let s): specs.append(s)
            case .failure(let e):
                reader.error(item, "bad port spec \(e.message)", hint: e.hint)
                ok = false
            }
        }
        return ok ? specs : nil
    }

    mutating func parseSettings(_ node: Node, at location: SourceLocation) -> Settings? {
        var settings = Settings(location: location)
        if DocumentReader.isNull(node) { return settings }
        guard let fields = reader.entries(node, what: "settings", allowed: Self.settingsKeys) else { return settings }
        for (key, _, v) in fields {
            switch key {
            case "denied":
                guard let s = reader.string(v, what: "'denied'") else { continue }
                if let d = DeniedAction(rawValue: s) { settings.denied = d } else {
                    reader.error(v, "'denied' must be drop or reject, found '\(s)'")
                }
            case "log_denied":
                if let b = reader.bool(v, what: "'log_denied'") { settings.logDenied = b }
            default: break
            }
        }
        return settings
    }

    mutating func parseExpectations(_ node: Node) -> [FileFragment.RawExpectation] {
        if DocumentReader.isNull(node) { return [] }
        guard let items = reader.sequence(node, what: "expect") else { return [] }
        var out: [FileFragment.RawExpectation] = []
        for item in items {
            guard let fields = reader.entries(item, what: "an expectation", allowed: Self.expectKeys) else { continue }
            var from: PartyRef?, to: PartyRef?, port: PortSpec?, verdict: FlowVerdict?
            var complete = true
            for (key, _, v) in fields {
                switch key {
                case "from", "to":
                    guard let s = reader.string(v, what: "'\(key)'") else { complete = false; continue }
                    let ref: PartyRef
                    if let p = IPPrefix.parse(s) {
                        guard p.length == p.family.bits else {
                            reader.error(v, "'\(s)': an expectation names a zone or a single address, not a prefix")
                            complete = false
                            continue
                        }
                        ref = .address(p, reader.location(v))
                    } else {
                        ref = .name(NameRef(name: s, location: reader.location(v)))
                    }
                    if key == "from" { from = ref } else { to = ref }
                case "port":
                    guard let s = reader.string(v, what: "'port'") else { complete = false; continue }
                    switch PortSpec.parse(s) {
                    case .success(let spec): port = spec
                    case .failure(let e):
                        reader.error(v, "bad port spec \(e.message)", hint: e.hint)
                        complete = false
                    }
                case "verdict":
                    guard let s = reader.string(v, what: "'verdict'") else { complete = false; continue }
                    verdict = FlowVerdict(rawValue: s)
                    if verdict == nil {
                        reader.error(v, "'verdict' must be allow or deny, found '\(s)'")
                        complete = false
                    }
                default: break
                }
            }
            for key in ["from", "to", "port", "verdict"] where !fields.contains(where: { $0.key == key }) {
                reader.error(item, "expectation has no '\(key)'")
                complete = false
            }
            if complete, let from, let to, let port, let verdict {
                out.append(.init(from: from, to: to, port: port, verdict: verdict, location: reader.location(item)))
            }
        }
        return out
    }
}
