/// Shell-style globs (`*`, `?`, `[…]`) as systemd accepts them in unit names.
public enum Glob {
    /// Whether `name` matches `pattern`, with fnmatch(3) semantics and no special meaning for `/`.
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        if !isGlob(pattern) { return pattern == name }
        return fnmatch(Array(pattern.utf8)[...], Array(name.utf8)[...])
    }

    /// Whether the text has glob metacharacters.
    public static func isGlob(_ s: String) -> Bool { s.contains { $0 == "*" || $0 == "?" || $0 == "[" } }

    private static func fnmatch(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        var p = p, s = s
        while let c = p.first {
            switch c {
            case UInt8(ascii: "*"):
                p = p.dropFirst()
                if p.isEmpty { return true }
                var rest = s
                while true {
                    if fnmatch(p, rest) { return true }
                    if rest.isEmpty { return false }
                    rest = rest.dropFirst()
                }
            case UInt8(ascii: "?"):
                guard !s.isEmpty else { return false }
                p = p.dropFirst(); s = s.dropFirst()
            case UInt8(ascii: "["):
                guard let ch = s.first, let close = p.dropFirst(2).firstIndex(of: UInt8(ascii: "]")) else {
                    if s.first == c { p = p.dropFirst(); s = s.dropFirst(); continue }
                    return false
                }
                var set = p[(p.startIndex + 1)..<close]
                let negate = set.first == UInt8(ascii: "!") || set.first == UInt8(ascii: "^")
                if negate { set = set.dropFirst() }
                var hit = false
                var i = set.startIndex
                while i < set.endIndex {
                    if i + 2 < set.endIndex, set[i + 1] == UInt8(ascii: "-") {
                        if set[i] <= ch && ch <= set[i + 2] { hit = true }
                        i += 3
                    } else {
                        if set[i] == ch { hit = true }
                        i += 1
                    }
                }
                guard hit != negate else { return false }
                p = p[(close + 1)...]; s = s.dropFirst()
            default:
                guard s.first == c else { return false }
                p = p.dropFirst(); s = s.dropFirst()
            }
        }
        return s.isEmpty
    }
}
