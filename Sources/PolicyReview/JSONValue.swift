/// A JSON document with one spelling: keys sorted, two-space indentation, `/` not escaped.
///
/// Written by hand rather than with `JSONSerialization` so that the output is byte-stable across
/// platforms: the schema file in the repository must equal `zonewall schema` exactly.
public indirect enum JSONValue: Hashable, Sendable, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    /// A string.
    case string(String)
    /// A whole number.
    case int(Int)
    /// true or false.
    case bool(Bool)
    /// null.
    case null
    /// A list.
    case array([JSONValue])
    /// An object; rendered with its keys sorted.
    case object([String: JSONValue])

    public init(stringLiteral v: String) { self = .string(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }
    public init(integerLiteral v: Int) { self = .int(v) }
    public init(arrayLiteral items: JSONValue...) { self = .array(items) }
    public init(dictionaryLiteral pairs: (String, JSONValue)...) { self = .object(Dictionary(pairs, uniquingKeysWith: { $1 })) }

    /// The document, pretty-printed, with a final newline.
    public var rendered: String {
        var out = ""
        write(to: &out, indent: "")
        return out + "\n"
    }

    private func write(to out: inout String, indent: String) {
        switch self {
        case .string(let s): out += Self.quote(s)
        case .int(let i): out += String(i)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            // Short lists of scalars stay on one line: they read better in a diff.
            if items.count <= 8, items.allSatisfy(\.isScalar) {
                var line = "["
                for (i, v) in items.enumerated() {
                    if i > 0 { line += ", " }
                    v.write(to: &line, indent: indent)
                }
                if line.count < 100 { out += line + "]"; return }
            }
            out += "[\n"
            let inner = indent + "  "
            for (i, v) in items.enumerated() {
                out += inner
                v.write(to: &out, indent: inner)
                out += i == items.count - 1 ? "\n" : ",\n"
            }
            out += indent + "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{\n"
            let inner = indent + "  "
            for (i, k) in fields.keys.sorted().enumerated() {
                out += inner + Self.quote(k) + ": "
                fields[k]!.write(to: &out, indent: inner)
                out += i == fields.count - 1 ? "\n" : ",\n"
            }
            out += indent + "}"
        }
    }

    private var isScalar: Bool {
        switch self {
        case .array, .object: false
        default: true
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
