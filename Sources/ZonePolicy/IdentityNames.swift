/// The syntax of the local identities a zone may name: units, cgroup paths, users, interfaces.
public enum IdentityNames {
    /// The unit types whose cgroups hold processes or show up in the hierarchy.
    static let unitTypes: Set = ["service", "scope", "slice", "socket", "mount", "swap"]

    /// Why `text` is not a unit name or glob, or nil when it is one.
    public static func unitProblem(_ text: String) -> (message: String, hint: String)? {
        let hint = "a unit is NAME.TYPE (billing.service, db@1.service, libpod-3f2a.scope); globs may use * ? [...]"
        guard !text.isEmpty else { return ("a unit name is empty", hint) }
        guard text.utf8.count <= 255 else { return ("unit name '\(text)' is longer than 255 bytes", hint) }
        let glob = Glob.isGlob(text)
        for c in text.unicodeScalars {
            let ok = ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
                || ":-_.\\@".unicodeScalars.contains(c) || (glob && "*?[]!^".unicodeScalars.contains(c))
            guard ok else { return ("'\(text)' is not a unit name or glob: '\(c)' is not allowed", hint) }
        }
        if glob {
            var depth = 0
            for c in text { if c == "[" { depth += 1 } else if c == "]" { depth -= 1 }; if depth < 0 || depth > 1 { break } }
            guard depth == 0 else { return ("unit glob '\(text)' has an unbalanced '['", hint) }
            guard text.contains(where: { !"*?[]!^.".contains($0) }) else {
                return ("unit glob '\(text)' matches every cgroup", "name the units, e.g. 'billing-*.service'")
            }
            return nil
        }
        guard let dot = text.lastIndex(of: "."), dot != text.startIndex else {
            return ("'\(text)' is not a unit name: it has no type suffix", hint)
        }
        let type = String(text[text.index(after: dot)...])
        guard unitTypes.contains(type) else {
            return ("'\(text)' is not a unit name: '.\(type)' is not a unit type that has a cgroup",
                    "the types with cgroups are " + unitTypes.sorted().map { "." + $0 }.joined(separator: ", "))
        }
        return nil
    }

    /// Why `text` is not an absolute cgroup path, or nil when it is one.
    public static func cgroupProblem(_ text: String) -> (message: String, hint: String)? {
        let hint = "write the path from the cgroup2 root, e.g. /machine.slice/libpod-3f2a.scope"
        guard text.hasPrefix("/") else { return ("cgroup path '\(text)' is not absolute", hint) }
        let parts = text.split(separator: "/")
        guard !parts.isEmpty else { return ("cgroup path '/' is the root: it would hold every process", hint) }
        if parts.contains(where: { $0 == "." || $0 == ".." }) { return ("cgroup path '\(text)' has '.' or '..' in it", hint) }
        if parts.count > maxCgroupDepth {
            return ("cgroup path '\(text)' is \(parts.count) levels deep; zonewall matches cgroups up to level \(maxCgroupDepth)",
                    "name an ancestor at level \(maxCgroupDepth) or above: processes below a cgroup belong to its zone")
        }
        return nil
    }

    /// The deepest cgroup level the kernel rules match (`socket cgroupv2 level N`; the compiler's
    /// `Selector.maxCgroupLevel`). A process in a deeper cgroup matches through its ancestors.
    public static let maxCgroupDepth = 16

    /// Why `text` is not an interface name or `prefix*` wildcard, or nil when it is one.
    public static func interfaceProblem(_ text: String) -> (message: String, hint: String)? {
        let hint = "an interface name has 1 to 15 bytes, no '/', ':' or spaces; a trailing * matches any rest"
        let name = text.hasSuffix("*") ? String(text.dropLast()) : text
        if name.isEmpty && text == "*" { return ("interface '*' matches every interface", "name the interfaces, e.g. 'veth*'") }
        guard !name.isEmpty else { return ("an interface name is empty", hint) }
        guard name.utf8.count <= 15 else {
            return ("interface name '\(text)' is longer than 15 bytes (\(name.utf8.count))", hint)
        }
        guard !name.contains("*") else { return ("interface '\(text)': '*' is only allowed at the end", hint) }
        guard name != "." && name != ".." && !name.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace }) else {
            return ("'\(text)' is not an interface name", hint)
        }
        return nil
    }

    /// Why `text` is not a user name or uid, or nil when it is one.
    public static func userProblem(_ text: String) -> (message: String, hint: String)? {
        let hint = "write a user name (billing) or a uid (1001)"
        guard !text.isEmpty else { return ("a user name is empty", hint) }
        if text.allSatisfy(\.isNumber) {
            guard UInt32(text) != nil, text != "4294967295" else { return ("uid \(text) is out of range", hint) }
            return nil
        }
        guard text.utf8.count <= 32, let first = text.unicodeScalars.first,
              !("0"..."9").contains(first), first != "-",
              text.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-$".unicodeScalars.contains($0) })
        else { return ("'\(text)' is not a user name or uid", hint) }
        return nil
    }

    /// Whether interface `name` is matched by `pattern` (a name, or a prefix with a trailing `*`).
    public static func interface(_ pattern: String, matches name: String) -> Bool {
        pattern.hasSuffix("*") ? name.hasPrefix(pattern.dropLast()) : pattern == name
    }

    /// The canonical text of a cgroup path: `/a/b`.
    public static func normalizedCgroup(_ path: String) -> String {
        "/" + path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }
}
