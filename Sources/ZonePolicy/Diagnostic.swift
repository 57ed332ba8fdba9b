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
    /// `\u{HHHH}` for C1 and the Unicode line and paragraph separators. Other text is unchanged.
    public static func escaped(_ text: String) -> String {
        func isControl(_ v: UInt32) -> Bool { v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 }
        guard text.unicodeScalars.contains(where: { isControl($0.value) }) else { return text }
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count + 8)
        for c in text.unicodeScalars {
            let v = c.value
            guard isControl(v) else { out.unicodeScalars.append(c); continue }
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
}

extension Array where Element == Diagnostic {
    /// True when any diagnostic is an error.
    public var hasErrors: Bool { contains { $0.severity == .error } }
    /// Errors first is not wanted: stable order by place, then message.
    public var sortedByLocation: [Diagnostic] {
        sorted { ($0.location, $0.message) < ($1.location, $1.message) }
    }
}
