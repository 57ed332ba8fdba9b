/// A place in a policy file: 1-based line and column.
public struct SourceLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var path: String
    // 32-bit: a policy holds a location per member and rule, 100,000s of them, and a policy
    // file is far shorter than 2^31 lines (PolicyLimits).
    private var storedLine: Int32
    private var storedColumn: Int32

    public var line: Int {
        get { Int(storedLine) }
        set { storedLine = Int32(clamping: newValue) }
    }

    public var column: Int {
        get { Int(storedColumn) }
        set { storedColumn = Int32(clamping: newValue) }
    }

    public init(path: String, line: Int, column: Int) {
        self.path = path
        self.storedLine = Int32(clamping: line)
        self.storedColumn = Int32(clamping: column)
    }

    /// `path:line:col`
    public var description: String { "\(path):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.path, a.line, a.column) < (b.path, b.line, b.column)
    }
}

/// One problem found in a policy.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Hashable, Sendable { case error, warning }

    public var severity: Severity
    /// Where the problem is; a path with line 0 means "the whole file or directory".
    public var location: SourceLocation
    public var message: String
    /// A suggestion, e.g. "did you mean 'db'?".
    public var hint: String?

    public init(_ severity: Severity, at location: SourceLocation, _ message: String, hint: String? = nil) {
        self.severity = severity
        self.location = location
        self.message = message
        self.hint = hint
    }

    public static func error(_ location: SourceLocation, _ message: String, hint: String? = nil) -> Diagnostic {
        Diagnostic(.error, at: location, message, hint: hint)
    }

    public static func warning(_ location: SourceLocation, _ message: String, hint: String? = nil) -> Diagnostic {
        Diagnostic(.warning, at: location, message, hint: hint)
    }

    /// `path:line:col: error: message (hint)`; a location without a line prints as `path: error: …`.
    ///
    /// Control characters are escaped (`Diagnostic.escaped`): messages quote user values, and a
    /// member written as "192.0.2.1\n::error file=x::…" must not print as a second diagnostic.
    public var description: String {
        let place = Self.escaped(location.line > 0 ? location.description : location.path)
        var s = "\(place): \(severity.rawValue): \(Self.escaped(message))"
        if let hint { s += "\n\(place): note: \(Self.escaped(hint))" }
        return s
    }

    /// `text` with every control character written as an escape, so that it stays on one line and
    /// cannot drive a terminal: `\n`, `\r`, `\t`, `\xHH` for the rest of C0 and for DEL,
    /// `\u{HHHH}` for C1, the Unicode line and paragraph separators, and the format characters
    /// that reorder or hide text (bidi controls, zero-width characters, the BOM), so a value
    /// shows as written, e.g. 'admin\u{202e}' not a reversed tail. Other text is unchanged.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { isUnsafe($0.value) }) else { return text }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count + 8)
        for c in text.unicodeScalars {
            let v = c.value
            guard isUnsafe(v) else { out.unicodeScalars.append(c); continue }
            switch c {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                let hex = String(v, radix: 16)
                out += v <= 0x7F ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u{" + hex + "}"
            }
        }
        return out
    }

    /// Characters a diagnostic never prints as they are: C0, DEL, C1, U+2028/U+2029, and the
    /// format characters that reorder or hide text: LRM/RLM and the zero-width space, non-joiner
    /// and joiner (U+200B–U+200F), the bidi embeddings and overrides (U+202A–U+202E), the word
    /// joiner (U+2060), the bidi isolates (U+2066–U+2069) and the BOM (U+FEFF).
    static func isUnsafe(_ v: UInt32) -> Bool {
        switch v {
        case 0..<0x20, 0x7F...0x9F, 0x200B...0x200F, 0x2028...0x202E, 0x2060, 0x2066...0x2069, 0xFEFF: true
        default: false
        }
    }

    /// A GitHub Actions workflow command for this diagnostic:
    /// `::error file=…,line=…,col=…::message (hint)`, a location without a line giving `file=` alone.
    public var githubAnnotation: String {
        var props = "file=\(Self.githubProperty(location.path))"
        if location.line > 0 { props += ",line=\(location.line),col=\(location.column)" }
        let text = message + (hint.map { " (\($0))" } ?? "")
        return "::\(severity.rawValue) \(props)::\(Self.githubData(text))"
    }

    /// A workflow command's message: GitHub unescapes `%25`, `%0D` and `%0A`; every other character
    /// `escaped` would escape (ESC, BEL, the rest of C0, DEL, C1, bidi and zero-width characters) is
    /// written as its UTF-8 bytes percent-encoded (`%1B`, `%E2%80%AE`), which GitHub shows as is,
    /// so the annotation holds no raw control byte and cannot end early or reorder.
    public static func githubData(_ text: String) -> String {
        githubEscaped(text, alsoEscaping: [])
    }

    /// A workflow command's property value (`file=`): as `githubData`, and `:` and `,`
    /// (`%3A`, `%2C`), which GitHub unescapes in properties.
    public static func githubProperty(_ text: String) -> String {
        githubEscaped(text, alsoEscaping: [":", ","])
    }

    private static func githubEscaped(_ text: String, alsoEscaping extra: Set<Unicode.Scalar>) -> String {
        guard text.unicodeScalars.contains(where: { $0 == "%" || isUnsafe($0.value) || extra.contains($0) }) else { return text }
        var out = ""
        for c in text.unicodeScalars {
            guard c == "%" || isUnsafe(c.value) || extra.contains(c) else { out.unicodeScalars.append(c); continue }
            for byte in String(c).utf8 {
                out += "%" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}

extension Array where Element == Diagnostic {
    /// True when any diagnostic is an error.
    public var hasErrors: Bool { contains { $0.severity == .error } }
    /// Errors first is not wanted: stable order by place, then message.
    public var sortedByLocation: [Diagnostic] {
        sorted { ($0.location, $0.message) < ($1.location, $1.message) }
    }
}
