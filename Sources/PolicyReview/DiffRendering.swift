import ZonePolicy

/// `file:line` of a rule, as review output names it.
func place(_ r: AllowRule) -> String { "\(r.location.path):\(r.location.line)" }

func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }

extension PolicyDiff {
    /// One line: "opens 2 flows, closes 5", then member and zone changes when there are any.
    public var summary: String {
        if isEmpty { return "no change in meaning" }
        var parts = ["opens \(plural(opened.count + openedForMoved.count, "flow"))", "closes \(closed.count + closedForMoved.count)"]
        let memberChanges = membersAdded.count + membersRemoved.count
        if memberChanges > 0 { parts.append(plural(memberChanges, "member change")) }
        if !zonesAdded.isEmpty { parts.append("adds \(plural(zonesAdded.count, "zone"))") }
        if !zonesRemoved.isEmpty { parts.append("removes \(plural(zonesRemoved.count, "zone"))") }
        if !failsafeOpened.isEmpty { parts.append("failsafe opens \(failsafeOpened.specs.joined(separator: " "))") }
        if !failsafeClosed.isEmpty { parts.append("failsafe closes \(failsafeClosed.specs.joined(separator: " "))") }
        if !auditAdded.isEmpty { parts.append("audits \(plural(auditAdded.count, "zone")) (denied but passes)") }
        if !auditRemoved.isEmpty { parts.append("ends audit of \(plural(auditRemoved.count, "zone")) (denied again)") }
        if !settingsChanged.isEmpty { parts.append("changes \(settingsChanged.map(\.key).joined(separator: ", "))") }
        return parts.joined(separator: ", ")
    }

    /// What is responsible for a flow: its rules, and `settings.failsafe` for failsafe ports.
    func sources(_ f: Flow, opened: Bool) -> [String] {
        var out = f.rules.map(place)
        if !f.failsafe.isEmpty {
            let at = (opened ? newSettingsLocation : oldSettingsLocation).map { " \($0.path):\($0.line)" } ?? ""
            out.append("settings.failsafe" + at)
        }
        return out
    }

    /// `path:line` of the settings that hold the failsafe ports, for one side.
    func settingsPlace(opened: Bool) -> String? {
        (opened ? newSettingsLocation : oldSettingsLocation).map { "\($0.path):\($0.line)" }
    }

    /// What failsafe ports mean, for headings.
    static let failsafeMeaning = "inbound to this host from every zone and world, whatever the rules"
    /// What audit mode means, for headings.
    static let auditMeaning = "what the policy denies to or from the zone passes, logged as audit"

    /// A moved-address flow in words: `192.0.2.1 (was a, now world) → host`.
    func describe(_ m: MovedFlow) -> String {
        m.outbound ? "\(movedSide(m)) → \(m.peerLabel)" : "\(m.peerLabel) → \(movedSide(m))"
    }

    /// The moved addresses' end of a flow: `192.0.2.1 (was a, now world)`, the first three named.
    func movedSide(_ m: MovedFlow) -> String {
        let shown = m.members.prefix(3).joined(separator: ", ") + (m.members.count > 3 ? " and \(m.members.count - 3) more" : "")
        return "\(shown) (was \(m.was), now \(m.now))"
    }

    /// The stable JSON form: every key always present, every list sorted.
    public var json: JSONValue {
        func flows(_ fs: [Flow]) -> JSONValue {
            .array(fs.map { f -> JSONValue in
                ["from": .string(f.from.description), "to": .string(f.to.description), "ports": .array(f.ports.map(JSONValue.string))]
            })
        }
        func moved(_ ms: [MovedFlow]) -> JSONValue {
            .array(ms.map { m -> JSONValue in
                ["members": .array(m.members.map(JSONValue.string)), "was": .string(m.was.description), "now": .string(m.now.description),
                 "peer": .string(m.peer.description), "peerWas": .string((m.peerWas ?? m.peer).description), "direction": .string(m.outbound ? "to peer" : "from peer"),
                 "ports": .array(m.ports.map(JSONValue.string))]
            })
        }
        func members(_ ms: [Member]) -> JSONValue {
            .array(ms.map { m -> JSONValue in ["zone": .string(m.zone), "member": .string(m.member)] })
        }
        return [
            "opened": flows(opened),
            "closed": flows(closed),
            "members": ["added": members(membersAdded), "removed": members(membersRemoved)],
            "moved": ["opened": moved(openedForMoved), "closed": moved(closedForMoved)],
            "zones": ["added": .array(zonesAdded.map(JSONValue.string)), "removed": .array(zonesRemoved.map(JSONValue.string))],
            "failsafe": ["opened": .array(failsafeOpened.specs.map(JSONValue.string)), "closed": .array(failsafeClosed.specs.map(JSONValue.string))],
            "audit": ["added": .array(auditAdded.map(JSONValue.string)), "removed": .array(auditRemoved.map(JSONValue.string))],
            "settings": .array(settingsChanged.map { ["key": .string($0.key), "was": .string($0.was), "now": .string($0.now)] }),
        ]
    }

    /// Plain text for a terminal.
    public var text: String {
        if isEmpty { return "no change in meaning\n" }
        var out = summary + "\n"
        func section(_ title: String, _ flows: [Flow], _ moved: [MovedFlow], sign: String) {
            guard !flows.isEmpty || !moved.isEmpty else { return }
            out += "\n\(title):\n"
            for f in flows {
                out += "  \(sign) \(f.from) → \(f.to): \(f.ports.joined(separator: ", "))"
                let why = sources(f, opened: sign == "+")
                if !why.isEmpty { out += "  (\(why.joined(separator: ", ")))" }
                out += "\n"
            }
            for m in moved { out += "  \(sign) \(describe(m)): \(m.ports.joined(separator: ", "))  (member change)\n" }
        }
        section("opened", opened, openedForMoved, sign: "+")
        section("closed", closed, closedForMoved, sign: "-")
        if !membersAdded.isEmpty || !membersRemoved.isEmpty {
            out += "\nmembers:\n"
            for m in membersAdded { out += "  + \(m.zone): \(m.member)\n" }
            for m in membersRemoved { out += "  - \(m.zone): \(m.member)\n" }
        }
        if !zonesAdded.isEmpty || !zonesRemoved.isEmpty {
            out += "\nzones:\n"
            for z in zonesAdded { out += "  + \(z)\n" }
            for z in zonesRemoved { out += "  - \(z)\n" }
        }
        if !failsafeOpened.isEmpty || !failsafeClosed.isEmpty {
            out += "\nfailsafe (\(Self.failsafeMeaning)):\n"
            for (a, sign) in [(failsafeOpened, "+"), (failsafeClosed, "-")] where !a.isEmpty {
                out += "  \(sign) \(a.specs.joined(separator: ", "))"
                if let at = settingsPlace(opened: sign == "+") { out += "  (settings at \(at))" }
                out += "\n"
            }
        }
        if !auditAdded.isEmpty || !auditRemoved.isEmpty {
            out += "\naudit (\(Self.auditMeaning)):\n"
            for z in auditAdded { out += "  + \(z): denied but passes (audited)\n" }
            for z in auditRemoved { out += "  - \(z): denied again (audit off)\n" }
        }
        if !settingsChanged.isEmpty {
            out += "\nsettings:\n"
            for c in settingsChanged { out += "  ~ \(c.key): \(c.was) → \(c.now)\n" }
        }
        return out
    }

    /// GitHub refuses a comment body longer than this (in characters; counted here in UTF-16
    /// code units, which are never fewer).
    public static let markdownLimit = 65_536

    /// A pull-request comment body: summary, flow tables with the responsible rules, member
    /// changes, and a mermaid graph of the changed edges; never longer than `limit`. A longer
    /// one loses its graph first, then is cut at a line, with a note saying so.
    public func markdown(limit: Int = markdownLimit) -> String {
        let whole = markdownBody(graph: true)
        guard whole.utf16.count > limit else { return whole }
        let body = markdownBody(graph: false)
        let note = "\n\n> **The diff is cut here:** it is longer than a comment can be (\(limit) characters). "
            + "`zonewall diff` (text) or `--format json` shows all of it.\n"
        guard body.utf16.count + note.utf16.count > limit else {
            return body + "\n> The graph of changed flows is left out: with it the comment would be longer than \(limit) characters.\n"
        }
        // Up to the last line end that fits, in one pass.
        let room = max(0, limit - note.utf16.count)
        var used = 0
        var end = body.unicodeScalars.startIndex
        for i in body.unicodeScalars.indices {
            let c = body.unicodeScalars[i]
            used += c.utf16.count
            if used > room { break }
            if c == "\n" { end = body.unicodeScalars.index(after: i) }
        }
        return String(body.unicodeScalars[..<end]) + note
    }

    /// The whole markdown body; with `graph`, the mermaid graph of the changed edges at its end.
    public var markdown: String { markdown() }

    private func markdownBody(graph: Bool) -> String {
        var out = "### zonewall: \(summary)\n"
        if isEmpty {
            return out + "\nThe policy change does not change what is allowed, the zones or their members.\n"
        }
        func table(_ title: String, _ flows: [Flow], _ moved: [MovedFlow], ruleSide: String) {
            guard !flows.isEmpty || !moved.isEmpty else { return }
            defer {
                for m in moved {
                    let from = m.outbound ? "\(markdownList(m.members)) (was \(m.was), now \(m.now))" : m.peerLabel
                    let to = m.outbound ? m.peerLabel : "\(markdownList(m.members)) (was \(m.was), now \(m.now))"
                    out += "| \(from) | \(to) | \(m.ports.map { "`\($0)`" }.joined(separator: " ")) | member change |\n"
                }
            }
            out += "\n#### \(title)\n\n| from | to | ports | rule (\(ruleSide) policy) |\n|---|---|---|---|\n"
            for f in flows {
                let why = sources(f, opened: ruleSide == "new")
                let rules = why.isEmpty ? "—" : why.map { "`\(markdownCode($0))`" }.joined(separator: "<br>")
                out += "| \(f.from) | \(f.to) | \(f.ports.map { "`\($0)`" }.joined(separator: " ")) | \(rules) |\n"
            }
        }
        table("Opened", opened, openedForMoved, ruleSide: "new")
        table("Closed", closed, closedForMoved, ruleSide: "old")
        if !membersAdded.isEmpty || !membersRemoved.isEmpty {
            out += "\n#### Members\n\n| zone | change | member |\n|---|---|---|\n"
            for m in membersAdded { out += "| \(m.zone) | added | `\(m.member)` |\n" }
            for m in membersRemoved { out += "| \(m.zone) | removed | `\(m.member)` |\n" }
        }
        if !zonesAdded.isEmpty || !zonesRemoved.isEmpty {
            out += "\n#### Zones\n\n"
            if !zonesAdded.isEmpty { out += "- added: \(zonesAdded.map { "`\($0)`" }.joined(separator: ", "))\n" }
            if !zonesRemoved.isEmpty { out += "- removed: \(zonesRemoved.map { "`\($0)`" }.joined(separator: ", "))\n" }
        }
        if !failsafeOpened.isEmpty || !failsafeClosed.isEmpty {
            out += "\n#### Failsafe ports\n\n\(Self.failsafeMeaning.prefix(1).uppercased() + Self.failsafeMeaning.dropFirst()).\n\n"
            for (a, word, opened) in [(failsafeOpened, "opened", true), (failsafeClosed, "closed", false)] where !a.isEmpty {
                out += "- \(word): \(a.specs.map { "`\($0)`" }.joined(separator: " "))"
                if let at = settingsPlace(opened: opened) { out += " (settings at `\(markdownCode(at))`)" }
                out += "\n"
            }
        }
        if !auditAdded.isEmpty || !auditRemoved.isEmpty {
            out += "\n#### Audit mode\n\n\(Self.auditMeaning.prefix(1).uppercased() + Self.auditMeaning.dropFirst()).\n\n"
            if !auditAdded.isEmpty { out += "- denied but passes (audited): \(auditAdded.map { "`\($0)`" }.joined(separator: ", "))\n" }
            if !auditRemoved.isEmpty { out += "- denied again (audit off): \(auditRemoved.map { "`\($0)`" }.joined(separator: ", "))\n" }
        }
        if !settingsChanged.isEmpty {
            out += "\n#### Settings\n\n"
            for c in settingsChanged { out += "- `\(c.key)`: `\(c.was)` → `\(c.now)`\n" }
        }
        if graph, !opened.isEmpty || !closed.isEmpty {
            out += "\n```mermaid\n" + mermaid + "```\n"
        }
        return out
    }

    /// A mermaid graph of the changed edges: opened in green, closed in red (dashed).
    public var mermaid: String {
        let edges = opened.map { ($0, true) } + closed.map { ($0, false) }
        var names: [Endpoint] = []
        for (f, _) in edges { for e in [f.from, f.to] where !names.contains(e) { names.append(e) } }
        names.sort { $0.description < $1.description }
        var out = "graph LR\n"
        for (i, e) in names.enumerated() { out += "  n\(i)\(mermaidNode(e))\n" }
        for (f, isOpened) in edges {
            let a = names.firstIndex(of: f.from)!, b = names.firstIndex(of: f.to)!
            let label = (isOpened ? "+ " : "- ") + f.ports.joined(separator: ", ")
            out += "  n\(a) \(isOpened ? "-->" : "-.->")|\"\(label)\"| n\(b)\n"
        }
        for (i, (_, isOpened)) in edges.enumerated() {
            out += "  linkStyle \(i) stroke:\(isOpened ? "#2da44e" : "#cf222e"),stroke-width:2px,color:\(isOpened ? "#1a7f37" : "#cf222e")\n"
        }
        return out
    }
}

/// A mermaid node shape and label: zones are boxes, `world` and `host` are rounded.
func mermaidNode(_ e: Endpoint) -> String {
    e.isZone ? "[\"\(e)\"]" : "([\"\(e)\"])"
}

/// Up to three addresses as code spans, and how many more.
func markdownList(_ members: [String]) -> String {
    members.prefix(3).map { "`\($0)`" }.joined(separator: ", ") + (members.count > 3 ? " and \(members.count - 3) more" : "")
}

/// Backticks cannot occur inside a markdown code span written with one backtick.
func markdownCode(_ s: String) -> String { s.replacingOccurrences(of: "`", with: "'") }
