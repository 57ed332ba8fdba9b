import Foundation

/// The outcome of loading a policy: the policy when there are no errors, and every diagnostic.
public struct LoadResult: Sendable {
    public var policy: Policy?
    public var diagnostics: [Diagnostic]

    /// Files given as text that were not read as a policy (YAML syntax and the like).
    var unparsed: [String] = []
    /// Whether an unknown zone was not reported, as a file that was not read may declare it.
    var uncheckedReferences = false
    /// Whether the directory or a file could not be read for a reason of the system's (too many
    /// open files, an I/O error): reading again later may succeed where nothing else changed.
    public var readFailed = false

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { diagnostics.filter { $0.severity == .warning } }
}

/// A policy file's text.
public struct PolicyFile: Sendable {
    public var path: String
    public var contents: String
    /// The file's stamp when it was read, if settled (a daemon's load, with a cache).
    var stamp: FileStamp?
    /// The cached parse of a file whose stamp is unchanged: its contents were not read.
    var unchanged: (FileFragment, [Diagnostic], FileKey)?

    public init(path: String, contents: String) {
        self.path = path
        self.contents = contents
    }
}

/// Reads a policy directory into a validated `Policy`.
public enum PolicyLoader {
    /// The file's text: valid UTF-8, a leading byte order mark dropped (as Foundation's
    /// `String(data:encoding:)` drops it); nil when the bytes are not UTF-8. Validated in place:
    /// Foundation's conversion took 4% of `zonewall plan` at 10,000 zones.
    static func utf8Text(_ data: Data) -> String? {
        data.withUnsafeBytes { raw in
            var bytes = raw.bindMemory(to: UInt8.self)[...]
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
            return String(validating: UnsafeBufferPointer(rebasing: bytes), as: UTF8.self)
        }
    }

    /// Loads every `*.yaml` and `*.yml` file directly inside `directory`.
    ///
    /// With `concurrently`, files are parsed on every CPU at once: faster, but each parse in
    /// flight holds its file's YAML tree. The daemon parses one file at a time, to keep its
    /// peak memory low.
    ///
    /// With `strictModes`, the directory, the files and the directories above them are checked
    /// first (`zonewall run` and `apply`); an insecure one fails the load before anything is read.
    /// Files over `limits` are refused before they are read. With `cache`, a file whose contents
    /// are unchanged since the last load is not parsed again. Without `warnings`, the lints are
    /// skipped (the daemon reports errors only).
    public static func load(directory: String, concurrently: Bool = true, strictModes: StrictModes? = nil,
                            limits: PolicyLimits = .standard, cache: ParseCache? = nil, warnings: Bool = true,
                            users: UserLookup? = nil) -> LoadResult {
        let dirLocation = SourceLocation(path: directory, line: 0, column: 0)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) else {
            return LoadResult(diagnostics: [.error(dirLocation, "policy directory does not exist")])
        }
        guard isDir.boolValue else {
            return LoadResult(diagnostics: [.error(dirLocation, "policy path is not a directory")])
        }
        let names: [String]
        switch listDirectory(directory) {
        case .success(let n): names = n
        case .failure(let e):
            var failed = LoadResult(diagnostics: [.error(dirLocation, "cannot read policy directory: \(String(cString: strerror(e.code)))")])
            failed.readFailed = true
            return failed
        }
        let policyNames = names.filter(isPolicyFileName).sorted()
        // `web.YAML`: meant as a policy file, but names are case-sensitive and it is not read.
        let otherCase = names.filter { !isPolicyFileName($0) && isPolicyFileName($0.lowercased()) }.sorted()
        guard !policyNames.isEmpty else {
            let hint = otherCase.isEmpty ? nil
                : "\(otherCase.joined(separator: ", ")) \(otherCase.count == 1 ? "is" : "are") not read: names end in .yaml or .yml, in lower case"
            return LoadResult(diagnostics: [.error(dirLocation, "policy directory has no *.yaml or *.yml files", hint: hint)])
        }
        guard policyNames.count <= limits.files else {
            return LoadResult(diagnostics: [.error(dirLocation, "policy directory has \(policyNames.count) policy files, more than the limit of \(limits.files)",
                                                   hint: "merge files; zonewall refuses more so that a runaway generator cannot exhaust the host")])
        }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        if let strictModes {
            let insecure = strictModes.check(directory: directory, files: policyNames.map { base + $0 })
            if !insecure.isEmpty { return LoadResult(diagnostics: insecure) }
        }
        var files: [PolicyFile] = []
        var diagnostics: [Diagnostic] = []
        var unreadable: [String] = []
        var readFailed = false
        var totalBytes = 0
        let now = cache == nil ? 0 : FileStamp.now
        for name in policyNames {
            let path = base + name
            let fileLocation = SourceLocation(path: path, line: 0, column: 0)
            // One stat per file: the cache's check and the read's both use it.
            let stamp = fileStamp(path)
            if let cache, let stamp, let parsed = cache.unchanged(path, stamp: stamp) {
                totalBytes += parsed.2.length
                guard totalBytes <= limits.totalBytes else {
                    diagnostics.append(.error(fileLocation, "policy files add up to more than the limit of \(limits.totalBytes.byteCount) with this one",
                                              hint: "the limit bounds the memory a policy can take"))
                    unreadable.append(path)
                    break
                }
                var file = PolicyFile(path: path, contents: "")
                file.unchanged = parsed
                files.append(file)
                continue
            }
            let data: Data
            switch readBounded(path, stamp: stamp, limit: limits.bytesPerFile) {
            case .success(let d): data = d
            case .failure(let e):
                diagnostics.append(.error(fileLocation, e.message, hint: e.hint))
                unreadable.append(path)
                readFailed = readFailed || e.system
                continue
            }
            totalBytes += data.count
            guard totalBytes <= limits.totalBytes else {
                diagnostics.append(.error(fileLocation, "policy files add up to more than the limit of \(limits.totalBytes.byteCount) with this one",
                                          hint: "the limit bounds the memory a policy can take"))
                unreadable.append(path)
                break
            }
            guard let text = Self.utf8Text(data) else {
                diagnostics.append(.error(fileLocation, "file is not valid UTF-8"))
                unreadable.append(path)
                continue
            }
            var file = PolicyFile(path: path, contents: text)
            // Stamped before the read: a change during the read makes the next stamp differ.
            if cache != nil, let stamp, stamp.isSettled(at: now) { file.stamp = stamp }
            files.append(file)
        }
        var result = parse(files, unreadable: unreadable, readFailures: diagnostics, concurrently: concurrently, limits: limits,
                           cache: cache, warnings: warnings)
        if warnings {
            result.diagnostics += otherCase.map {
                .warning(SourceLocation(path: base + $0, line: 0, column: 0), "this file is not read: policy files end in .yaml or .yml, in lower case",
                         hint: "rename it to \(Self.lowerCasedExtension($0)) to make it part of the policy")
            }
        }
        result.diagnostics = result.diagnostics.sortedByLocation
        result.readFailed = readFailed
        if result.diagnostics.hasErrors { result.policy = nil }
        return resolvingUsers(result, users)
    }

    /// `web.YAML` as `web.yaml`.
    static func lowerCasedExtension(_ name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return name }
        return name[..<dot] + name[dot...].lowercased()
    }

    /// Whether a directory entry is a policy file: `*.yaml` or `*.yml`, not hidden.
    public static func isPolicyFileName(_ name: String) -> Bool {
        (name.hasSuffix(".yaml") || name.hasSuffix(".yml")) && !name.hasPrefix(".")
    }

    /// Why a policy file was not read.
    struct ReadFailure: Error {
        var message: String
        var hint: String?
        /// The system's failure (too many open files, an I/O error), not the file's own state.
        var system = false
    }

    /// An errno, as an error.
    struct Errno: Error { var code: Int32 }

    /// The names in a directory (`.` and `..` left out), or the errno of what failed.
    static func listDirectory(_ path: String) -> Result<[String], Errno> {
        guard let dir = opendir(path) else { return .failure(Errno(code: errno)) }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { return .failure(Errno(code: errno)) }
                return .success(names)
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// A regular file's stamp; nil when it cannot be stat'ed or is not a regular file (the read
    /// then says why).
    static func fileStamp(_ path: String) -> FileStamp? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FileStamp(st)
    }

    /// Reads a regular file of at most `limit` bytes, without reading more than that of a
    /// larger one; `stamp` is the file's, taken just before (nil: not a readable regular file).
    static func readBounded(_ path: String, stamp: FileStamp?, limit: Int) -> Result<Data, ReadFailure> {
        guard let stamp else {
            var st = stat()
            if stat(path, &st) != 0 {
                let code = errno
                return .failure(ReadFailure(message: "cannot read file: \(String(cString: strerror(code)))", system: code != ENOENT))
            }
            return .failure(ReadFailure(message: "cannot read file: not a regular file"))
        }
        let tooLarge = ReadFailure(message: "file is larger than the limit of \(limit.byteCount) per policy file",
                                     hint: "split it; the limit bounds the memory a policy can take")
        guard stamp.size <= Int64(limit) else { return .failure(tooLarge) }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let code = errno
            // Permission denied is the file's own state; too many open files or an I/O error is the system's.
            return .failure(ReadFailure(message: "cannot read file: \(String(cString: strerror(code)))", system: code != EACCES && code != EPERM))
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        defer { close(fd) }
        // The size can grow between stat and read: never take more than the limit.
        guard let data = try? handle.read(upToCount: limit + 1) else { return .success(Data()) }
        return data.count > limit ? .failure(tooLarge) : .success(data)
    }

    /// Parses and validates policy files given as text (tests use this directly).
    public static func parse(_ files: [PolicyFile], concurrently: Bool = true, limits: PolicyLimits = .standard,
                             cache: ParseCache? = nil, warnings: Bool = true, users: UserLookup? = nil) -> LoadResult {
        resolvingUsers(parse(files, unreadable: [], concurrently: concurrently, limits: limits, cache: cache, warnings: warnings), users)
    }

    /// `parse`, knowing that the files at `unreadable` exist but could not be read, as
    /// `readFailures` say (`load`); those diagnostics come first in the result.
    static func parse(_ files: [PolicyFile], unreadable: [String], readFailures: [Diagnostic] = [], concurrently: Bool = true,
                      limits: PolicyLimits = .standard, cache: ParseCache? = nil, warnings: Bool = true) -> LoadResult {
        // A file not read may hold the rules that use a zone: lints would be guesses ("no allow rule
        // mentions zone 'api'"), so they wait, as for any other error, until every file is read.
        let complete = unreadable.isEmpty && !readFailures.hasErrors
        var result = parseReadable(files, unreadable: unreadable, concurrently: concurrently, limits: limits, cache: cache,
                                   warnings: warnings && complete)
        result.diagnostics = readFailures + result.diagnostics
        if result.uncheckedReferences {
            // Unknown zones were not reported: say why once, on the first error of a file not read.
            let unread = (unreadable + result.unparsed).sorted()
            let others = unread.count > 1 ? " (nor \(unread.dropFirst().joined(separator: ", ")))" : ""
            let note = "references to zones were not checked, because \(unread[0])\(others) could not be read"
            if let i = result.diagnostics.firstIndex(where: { $0.severity == .error && $0.location.path == unread[0] }) {
                result.diagnostics[i].hint = result.diagnostics[i].hint.map { "\($0); \(note)" } ?? note
            }
        }
        return result
    }

    static func parseReadable(_ files: [PolicyFile], unreadable: [String], concurrently: Bool, limits: PolicyLimits,
                              cache: ParseCache?, warnings: Bool) -> LoadResult {
        // Files are independent until they are resolved together: parse them on every CPU.
        let sorted = files.sorted(by: { $0.path < $1.path })
        let parseOne: @Sendable (PolicyFile) -> (FileFragment, [Diagnostic], FileKey) = { file in
            if let unchanged = file.unchanged { return unchanged }
            let key = FileKey(hash: cache.map { _ in ParseCache.hash(file.contents) } ?? 0, length: file.contents.utf8.count)
            if let hit = cache?.lookup(file, hash: key.hash) {
                cache?.restamp(file)
                return (hit.0, hit.1, key)
            }
            var parser = FileParser(path: file.path, maxDepth: limits.depth)
            let fragment = parser.parse(file.contents)
            cache?.store(file, hash: key.hash, (fragment, parser.reader.diagnostics))
            return (fragment, parser.reader.diagnostics, key)
        }
        cache?.keep(only: Set(files.map(\.path)))
        let parsed = concurrently ? concurrentMap(sorted, parseOne) : sorted.map(parseOne)
        let fragments = parsed.map(\.0)
        var diagnostics = parsed.flatMap(\.1)
        // The daemon's reloads (a cache, no lints) keep the last clean resolve, and patch it when
        // only zones' members changed (`ResolvedPolicy.patched`); anything else resolves again.
        let remembering = cache != nil && !warnings
        let files = ResolvedPolicy.Files(paths: sorted.map(\.path), keys: parsed.map(\.2))
        let overLimits = limits.violations(in: fragments)
        if !overLimits.isEmpty {
            // Resolving a policy this large is the cost the limits exist to refuse.
            if remembering { cache?.remember(nil) }
            return LoadResult(policy: nil, diagnostics: (diagnostics + overLimits).sortedByLocation)
        }
        if remembering, diagnostics.isEmpty, let last = cache?.lastResolved,
           let patched = last.patched(to: files, fragments: fragments) {
            cache?.remember(patched)
            cache?.patches.withLock { $0 += 1 }
            return LoadResult(policy: patched.policy, diagnostics: [])
        }
        var resolver = PolicyResolver(fragments: fragments)
        // A file that was not read may declare the zones others name: "unknown zone" would be false.
        let unparsed = zip(sorted, fragments).filter { $0.1.unread }.map(\.0.path)
        resolver.checksReferences = unreadable.isEmpty && unparsed.isEmpty
        // Warnings about an invalid policy mislead ("zone has no members" when its member was
        // rejected): they are given only once the errors are fixed.
        let policy = resolver.resolve(warnings: warnings && !diagnostics.hasErrors)
        diagnostics += resolver.diagnostics
        diagnostics = diagnostics.sortedByLocation
        if remembering {
            cache?.remember(diagnostics.isEmpty ? ResolvedPolicy(files: files, fragments: fragments, policy: policy) : nil)
        }
        var result = LoadResult(policy: diagnostics.hasErrors ? nil : policy, diagnostics: diagnostics)
        result.unparsed = unparsed
        result.uncheckedReferences = resolver.uncheckedReferences > 0
        return result
    }

    /// The policy's user names resolved to uids (`Policy.userIDs`), and one user in two zones
    /// under two spellings (`root` and `0`) refused.
    private static func resolvingUsers(_ result: LoadResult, _ lookup: UserLookup?) -> LoadResult {
        guard let policy = result.policy, policy.zones.contains(where: { !$0.users.isEmpty }) else { return result }
        let (ids, found) = UserIdentities.resolve(policy, lookup: lookup)
        var out = result
        out.policy?.userIDs = ids
        guard !found.isEmpty else { return out }
        out.diagnostics = (out.diagnostics + found).sortedByLocation
        if out.diagnostics.hasErrors { out.policy = nil }
        return out
    }
}

/// `items.map(body)`, with the calls spread over the CPUs; the order of the results is kept.
public func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], _ body: @Sendable (T) -> R) -> [R] {
    guard items.count > 1 else { return items.map(body) }
    var results = [R?](repeating: nil, count: items.count)
    results.withUnsafeMutableBufferPointer { buffer in
        // Each iteration writes only its own slot.
        nonisolated(unsafe) let out = buffer
        DispatchQueue.concurrentPerform(iterations: items.count) { i in out[i] = body(items[i]) }
    }
    return results.map { $0! }
}

/// `items` cut into runs of `size` (the last one shorter): units of work for `concurrentMap`
/// when one item alone is too little to send to another CPU.
public func runs<T>(of items: [T], size: Int) -> [ArraySlice<T>] {
    stride(from: 0, to: items.count, by: max(1, size)).map { items[$0 ..< min($0 + size, items.count)] }
}

/// A name as written, with its place: zones and endpoints are resolved once all files are read.
struct NameRef: Hashable {
    var name: String
    var location: SourceLocation
}

/// One endpoint of an expectation before resolution.
enum PartyRef: Equatable {
    case name(NameRef)
    case address(IPPrefix, SourceLocation)
    /// `unit:…`, `cgroup:…`, `user:…`, `iface:…`.
    case identity(Party, SourceLocation)
}

/// What one file contributes, before cross-file checks.
struct FileFragment {
    struct RawRule: Equatable {
        var from: [NameRef]
        var to: [NameRef]
        var ports: [PortSpec]
        var description: String?
        var location: SourceLocation
        var lint: LintIgnore?
    }
    struct RawExpectation: Equatable {
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
    /// The zone names of allow rules left out for errors of their own (a bad port spec): still
    /// checked against the zones, so that each problem of a rule is reported at once.
    var namesOfBadRules: [NameRef] = []
    /// The file was not read as a policy at all (YAML syntax, no document, refused aliases, not a
    /// mapping): whatever it declares is unknown, so references to zones are not checked.
    var unread = false
}

/// Turns one file's YAML into a fragment, reporting every shape error.
struct FileParser {
    var reader: DocumentReader

    /// Deepest nesting of collections accepted (`PolicyLimits.depth`).
    let maxDepth: Int

    /// The port specs read so far, by their text: a large policy writes the same few dozen tens of
    /// thousands of times.
    private var portSpecs: [String: PortSpec] = [:]

    init(path: String, maxDepth: Int = PolicyLimits.standard.depth) {
        reader = DocumentReader(path: path)
        self.maxDepth = maxDepth
    }

    static let topKeys: Set = ["zones", "allow", "settings", "expect"]
    static let zoneKeys: Set = ["description", "members", "lint", "audit", "units", "cgroups", "users", "interfaces"]
    static let ruleKeys: Set = ["from", "to", "ports", "description", "lint"]
    static let lintKeys: Set = ["ignore", "reason"]
    static let settingsKeys: Set = ["denied", "log_denied", "revoke_established", "failsafe", "audit", "log_group", "log_rate", "log_to",
                                    "ct_mark_bits"]
    static let expectKeys: Set = ["from", "to", "port", "verdict"]

    mutating func parse(_ text: String) -> FileFragment {
        var fragment = FileFragment()
        fragment.unread = true  // until the top-level mapping is read
        let root: Node?
        do {
            root = try YAMLComposer.compose(text)
        } catch {
            reader.diagnostics.append(Self.diagnostic(for: error, path: reader.path, text: text))
            return fragment
        }
        guard let root, !DocumentReader.isNull(root) else {
            // Refused rather than read as "adds nothing": an editor that truncates a file and then
            // writes it leaves it empty for a moment, and a daemon reloading then would drop every
            // zone the file declares, opening what they closed.
            reader.diagnostics.append(.error(SourceLocation(path: reader.path, line: 1, column: 1),
                                             "the file holds no YAML document (it is empty, or only comments or null)",
                                             hint: "a half-written save? A file that deliberately declares nothing holds {}"))
            return fragment
        }
        guard reader.checkExpansion(root, maxDepth: maxDepth) else { return fragment }
        reader.text = text
        guard let entries = reader.entries(root, what: "the top level", allowed: Self.topKeys) else { return fragment }
        fragment.unread = false
        for (key, keyNode, value) in entries {
            let saved = reader.enter(value, of: keyNode)
            defer { reader.leave(saved) }
            switch key {
            case "zones": fragment.zones = parseZones(value)
            case "allow": (fragment.rules, fragment.namesOfBadRules) = parseRules(value)
            case "settings": fragment.settings = parseSettings(value, at: reader.location(keyNode))
            case "expect": fragment.expectations = parseExpectations(value)
            default: break
            }
        }
        return fragment
    }

    /// The diagnostic for a document libyaml refused, at the place it names (for the reader's
    /// errors, which give a byte offset, the line and column of that byte in `text`).
    static func diagnostic(for e: YAMLError, path: String, text: String) -> Diagnostic {
        switch e {
        case .syntax(let context, let problem, let mark):
            let ctx = context.map { "\($0) " } ?? ""
            // A tab where indentation is read: libyaml's words do not say so.
            let line = yamlLines(text).dropFirst(mark.line - 1).first
            let tabbed = line.map { $0.prefix { $0 == " " || $0 == "\t" }.contains("\t") } ?? false
            return .error(SourceLocation(path: path, line: mark.line, column: mark.column), "YAML syntax: \(ctx)\(problem)",
                          hint: tabbed ? "this line is indented with a tab; YAML indents with spaces only" : nil)
        case .reader(let problem, let offset):
            // Line and column (in characters) of the byte libyaml stopped at.
            let before = Array(text.utf8.prefix(offset))
            let lines = before.split(separator: 10, omittingEmptySubsequences: false)
            let place = SourceLocation(path: path, line: lines.count,
                                       column: String(decoding: lines.last.map(Array.init) ?? [], as: UTF8.self).count + 1)
            let control = problem.contains("control characters")
            return .error(place, "YAML reader: \(problem)",
                          hint: control ? "a YAML file holds no control characters but tab, newline and carriage return; in a double-quoted string write one as an escape (\"\\x07\")" : nil)
        case .aliasKey(let mark):
            // A key must be written out: an alias key could also hide an expansion bomb.
            return .error(SourceLocation(path: path, line: mark.line, column: mark.column), "an alias cannot be used as a mapping key",
                          hint: "write the key out; alias keys can hide an expansion bomb")
        }
    }

    /// The lines of `text` as libyaml numbers them in its marks: LF, CR, CR LF, NEL, LS and PS
    /// each end one. (Splitting at "\n" alone gave fewer lines for CR or CR LF files, and Swift
    /// reads CR LF as one `Character`, so it was not split there at all.)
    static func yamlLines(_ text: String) -> [Substring] {
        let scalars = text.unicodeScalars
        var lines: [Substring] = []
        var start = scalars.startIndex, i = start
        while i < scalars.endIndex {
            let c = scalars[i]
            guard c == "\n" || c == "\r" || c == "\u{85}" || c == "\u{2028}" || c == "\u{2029}" else {
                i = scalars.index(after: i)
                continue
            }
            lines.append(Substring(scalars[start..<i]))
            i = scalars.index(after: i)
            if c == "\r", i < scalars.endIndex, scalars[i] == "\n" { i = scalars.index(after: i) }
            start = i
        }
        lines.append(Substring(scalars[start...]))
        return lines
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
            // A zone written as an alias (`api: *web`): what is wrong in it is reported at the alias.
            let zoneAlias = reader.enter(value, of: keyNode)
            defer { reader.leave(zoneAlias) }
            guard let fields = reader.entries(value, what: "zone '\(name)'", allowed: Self.zoneKeys) else { continue }
            for (key, keyNode, v) in fields {
                let saved = reader.enter(v, of: keyNode)
                defer { reader.leave(saved) }
                switch key {
                case "description":
                    zone.description = reader.text(v, what: "a zone's description")
                case "audit":
                    if let b = reader.bool(v, what: "'audit'") { zone.audit = b }
                case "members":
                    if DocumentReader.isNull(v) { continue }
                    guard let items = reader.sequence(v, what: "members of zone '\(name)'") else { continue }
                    zone.members.reserveCapacity(zone.members.count + items.count)  // no growth slack: 100,000s of members
                    for item in items {
                        let saved = reader.enter(item, in: v)
                        defer { reader.leave(saved) }
                        guard let text = reader.string(item, what: "a member of zone '\(name)'") else { continue }
                        if let p = parsePrefix(text, item) { zone.members.append(Located(p, at: reader.location(item, through: reader.alias))) }
                    }
                case "lint":
                    zone.lint = parseLint(v, what: "zone '\(name)'")
                case "units", "cgroups", "users", "interfaces":
                    if DocumentReader.isNull(v) { continue }
                    guard let items = reader.sequence(v, what: "\(key) of zone '\(name)'") else { continue }
                    for item in items {
                        let saved = reader.enter(item, in: v)
                        defer { reader.leave(saved) }
                        guard let text = reader.string(item, what: "an item of \(key) of zone '\(name)'") else { continue }
                        let problem: (message: String, hint: String)? = switch key {
                        case "units": IdentityNames.unitProblem(text)
                        case "cgroups": IdentityNames.cgroupProblem(text)
                        case "users": IdentityNames.userProblem(text)
                        default: IdentityNames.interfaceProblem(text)
                        }
                        if let problem {
                            reader.error(item, problem.message, hint: problem.hint)
                            continue
                        }
                        let located = Located(key == "cgroups" ? IdentityNames.normalizedCgroup(text) : text, at: reader.location(item))
                        switch key {
                        case "units": zone.units.append(located)
                        case "cgroups": zone.cgroups.append(located)
                        case "users": zone.users.append(located)
                        default: zone.interfaces.append(located)
                        }
                    }
                default: break
                }
            }
            zones.append(zone)
        }
        return zones
    }

    /// `text` without surrounding whitespace. Most members have none: one that starts and ends
    /// with an ASCII byte other than a space or a tab is returned as it is, without Foundation's
    /// trimming (a tenth of loading 100,000 members).
    static func trimmed(_ text: String) -> String {
        let u = text.utf8
        if let a = u.first, let b = u.last, a < 0x80, b < 0x80, a != 0x20, a != 0x09, b != 0x20, b != 0x09 { return text }
        return text.trimmingCharacters(in: .whitespaces)
    }

    /// An address or prefix, rejecting host bits with the corrected prefix as the hint.
    mutating func parsePrefix(_ text: String, _ node: Node) -> IPPrefix? {
        guard let p = IPPrefix.parse(Self.trimmed(text)) else {
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

    /// The rules, and the zone names of the rules left out for errors.
    mutating func parseRules(_ node: Node) -> ([FileFragment.RawRule], [NameRef]) {
        if DocumentReader.isNull(node) { return ([], []) }
        guard let items = reader.sequence(node, what: "allow") else { return ([], []) }
        var rules: [FileFragment.RawRule] = []
        var namesOfBad: [NameRef] = []
        for item in items {
            let saved = reader.enter(item, in: node)
            defer { reader.leave(saved) }
            let location = reader.location(item)
            guard let fields = reader.entries(item, what: "an allow rule", allowed: Self.ruleKeys) else { continue }
            var from: [NameRef]?, to: [NameRef]?, ports: [PortSpec]?, description: String?, lint: LintIgnore?
            var ok = true
            for (key, keyNode, v) in fields {
                let saved = reader.enter(v, of: keyNode)
                defer { reader.leave(saved) }
                switch key {
                case "from", "to":
                    let names = reader.oneOrMany(v, what: "'\(key)'")?.map { NameRef(name: $0.0, location: reader.location($0.1, through: $0.2)) }
                    if names == nil { ok = false }
                    if key == "from" { from = names } else { to = names }
                case "ports":
                    ports = parsePorts(v)
                    if ports == nil { ok = false }
                case "description":
                    description = reader.text(v, what: "a rule's description")
                case "lint":
                    lint = parseLint(v, what: "an allow rule")
                default: break
                }
            }
            // A key that is present but bad already has its own error; a merge key has one too.
            let merged = DocumentReader.hasMergeKey(item)
            if merged { ok = false }
            for key in ["from", "to"] where !merged && !fields.contains(where: { $0.key == key }) {
                reader.error(item, "allow rule has no '\(key)'")
                ok = false
            }
            if ports == nil && !merged && !fields.contains(where: { $0.key == "ports" }) {
                reader.error(item, "allow rule has no 'ports'", hint: "list what it admits, e.g. ports: [tcp/443]; write [any] for all traffic")
                ok = false
            }
            if ok, let from, let to, let ports {
                rules.append(.init(from: from, to: to, ports: ports, description: description, location: location, lint: lint))
            } else if !merged {
                namesOfBad += (from ?? []) + (to ?? [])
            }
        }
        return (rules, namesOfBad)
    }

    /// `lint: {ignore: [KIND, …], reason: "…"}`: both keys are required, so every silenced lint says why.
    mutating func parseLint(_ node: Node, what: String) -> LintIgnore? {
        guard let fields = reader.entries(node, what: "'lint' of \(what)", allowed: Self.lintKeys) else { return nil }
        var kinds: Set<LintKind>?, reason: String?
        for (key, keyNode, v) in fields {
            let saved = reader.enter(v, of: keyNode)
            defer { reader.leave(saved) }
            switch key {
            case "ignore":
                guard let items = reader.oneOrMany(v, what: "'ignore'") else { continue }
                var set = Set<LintKind>()
                for (name, item, alias) in items {
                    if let k = LintKind(rawValue: name) { set.insert(k); continue }
                    let names = LintKind.allCases.map(\.rawValue)
                    reader.error(item, through: alias, "unknown lint '\(name)'",
                                 hint: Spelling.closest(to: name, in: names).map { "did you mean '\($0)'?" }
                                     ?? "lints: \(names.sorted().joined(separator: ", "))")
                }
                kinds = set
            case "reason":
                reason = reader.text(v, what: "'reason'")
                if let r = reason, r.allSatisfy(\.isWhitespace) {
                    reader.error(v, "'reason' is empty", hint: "say why the lint does not apply here, for the next reviewer")
                    reason = nil
                }
            default: break
            }
        }
        let merged = DocumentReader.hasMergeKey(node)
        if !merged && !fields.contains(where: { $0.key == "ignore" }) {
            reader.error(node, "'lint' has no 'ignore'", hint: "name the lints to silence, e.g. ignore: [covered]")
        }
        if !merged && !fields.contains(where: { $0.key == "reason" }) {
            reader.error(node, "'lint' has no 'reason'", hint: "say why the lint does not apply here, for the next reviewer")
        }
        guard let kinds, let reason else { return nil }
        return LintIgnore(kinds: kinds, reason: reason)
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
            let saved = reader.enter(item, in: node)
            defer { reader.leave(saved) }
            guard let text = reader.string(item, what: "a port spec") else { ok = false; continue }
            if let known = portSpecs[text] {
                specs.append(known)
                continue
            }
            switch PortSpec.parse(text) {
            case .success(let s):
                specs.append(s)
                portSpecs[text] = s
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
        for (key, keyNode, v) in fields {
            let saved = reader.enter(v, of: keyNode)
            defer { reader.leave(saved) }
            switch key {
            case "denied":
                guard let s = reader.string(v, what: "'denied'") else { continue }
                if let d = DeniedAction(rawValue: s) { settings.denied = d } else {
                    reader.error(v, "'denied' must be drop or reject, found '\(s)'")
                }
            case "log_denied":
                if let b = reader.bool(v, what: "'log_denied'") { settings.logDenied = b }
            case "revoke_established":
                if let b = reader.bool(v, what: "'revoke_established'") { settings.revokeEstablished = b }
            case "failsafe":
                settings.failsafe = parseFailsafe(v)
            case "audit":
                if let b = reader.bool(v, what: "'audit'") { settings.audit = b }
            case "log_group":
                if let g = reader.integer(v, what: "'log_group'", describe: "an NFLOG group number", in: 0...Int(UInt16.max)) {
                    settings.logGroup = UInt16(g)
                }
            case "log_rate":
                if let r = reader.integer(v, what: "'log_rate'", describe: "a number of packets per second", in: 1...Int(UInt32.max)) {
                    settings.logRate = UInt32(r)
                }
            case "log_to":
                guard let s = reader.string(v, what: "'log_to'") else { continue }
                if let t = LogTarget(rawValue: s) { settings.logTo = t } else {
                    reader.error(v, "'log_to' must be nflog or kernel, found '\(s)'")
                }
            case "ct_mark_bits":
                guard let s = reader.string(v, what: "'ct_mark_bits'") else { continue }
                // Hexadecimal only: `0100` or `255` would be read as decimal by one reader and
                // as something else by the next, and a mask is read bit by bit.
                let digits = s.lowercased().hasPrefix("0x") ? s.dropFirst(2) : ""
                guard (1...8).contains(digits.count), digits.allSatisfy(\.isHexDigit),
                      let bits = UInt32(digits, radix: 16), bits != 0 else {
                    reader.error(v, "'ct_mark_bits' must be a non-zero 32-bit mask in hexadecimal (0x and 1 to 8 hex digits), found '\(s)'",
                                 hint: "e.g. \"0x000000ff\"; keep clear of kube-proxy (0x4000, 0x8000), Calico (0xffff0000), Cilium (0x0f00)")
                    continue
                }
                settings.ctMarkBits = bits
                settings.ctMarkBitsLocation = reader.location(v)
            default: break
            }
        }
        return settings
    }

    /// `failsafe: [tcp/22]`: single ports or ranges of TCP, UDP or SCTP; an empty list is fine.
    mutating func parseFailsafe(_ node: Node) -> [PortSpec] {
        if DocumentReader.isNull(node) { return [] }
        guard let items = reader.sequence(node, what: "'failsafe'") else { return [] }
        var specs: [PortSpec] = []
        for item in items {
            let saved = reader.enter(item, in: node)
            defer { reader.leave(saved) }
            guard let text = reader.string(item, what: "a port spec") else { continue }
            switch PortSpec.parse(text) {
            case .success(let s):
                if case .ports = s { specs.append(s) } else {
                    reader.error(item, "'failsafe' lists ports such as tcp/22, not '\(text)'",
                                 hint: "a failsafe opens this host's ports to every zone; name them one by one")
                }
            case .failure(let e):
                reader.error(item, "bad port spec \(e.message)", hint: e.hint)
            }
        }
        return specs.sorted()
    }

    mutating func parseExpectations(_ node: Node) -> [FileFragment.RawExpectation] {
        if DocumentReader.isNull(node) { return [] }
        guard let items = reader.sequence(node, what: "expect") else { return [] }
        var out: [FileFragment.RawExpectation] = []
        for item in items {
            let saved = reader.enter(item, in: node)
            defer { reader.leave(saved) }
            guard let fields = reader.entries(item, what: "an expectation", allowed: Self.expectKeys) else { continue }
            var from: PartyRef?, to: PartyRef?, port: PortSpec?, verdict: FlowVerdict?
            var complete = true
            for (key, keyNode, v) in fields {
                let saved = reader.enter(v, of: keyNode)
                defer { reader.leave(saved) }
                switch key {
                case "from", "to":
                    guard let s = reader.string(v, what: "'\(key)'") else { complete = false; continue }
                    let ref: PartyRef
                    if let identity = Party.identity(s) {
                        ref = .identity(identity, reader.location(v))
                    } else if let p = IPPrefix.parse(s) {
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
            let merged = DocumentReader.hasMergeKey(item)
            if merged { complete = false }
            for key in ["from", "to", "port", "verdict"] where !merged && !fields.contains(where: { $0.key == key }) {
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
