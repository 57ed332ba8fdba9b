import ZonePolicy

/// One self-contained HTML page (no network fetches): the zone × zone reachability matrix, the
/// zone list, and the diff against a base when given.
public struct HTMLReport: Sendable {
    /// The policy the page shows.
    public var policy: Policy
    /// The change against a base, shown above the matrix and outlined in it.
    public var diff: PolicyDiff?
    /// What the base was, for the diff heading (a directory or a git revision).
    public var baseName: String?
    /// The matrix shows at most this many endpoints, so the page stays usable on large policies.
    public var matrixLimit: Int

    /// A report of `policy`, with `diff` against `baseName` when given.
    public init(policy: Policy, diff: PolicyDiff? = nil, baseName: String? = nil, matrixLimit: Int = 150) {
        self.policy = policy
        self.diff = diff
        self.baseName = baseName
        self.matrixLimit = matrixLimit
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// The page.
    public var html: String {
        let model = Reachability(policy)
        let endpoints: [Endpoint] = [.world, .host] + policy.zones.map { .zone($0.name) }
        let shown = Array(endpoints.prefix(matrixLimit))
        var opened: [EndpointPair: Access] = [:], closed: [EndpointPair: Access] = [:]
        for f in diff?.opened ?? [] { opened[f.pair] = f.access }
        for f in diff?.closed ?? [] { closed[f.pair] = f.access }
        let auditAdded = Set(diff?.auditAdded ?? []), auditRemoved = Set(diff?.auditRemoved ?? [])
        func names(_ set: Set<String>, _ p: EndpointPair) -> Bool {
            [p.from, p.to].contains { if case .zone(let z) = $0 { set.contains(z) } else { false } }
        }
        let e = Self.escape

        var out = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
            <title>zonewall policy report</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1f2328; }
            h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
            table { border-collapse: collapse; }
            td, th { border: 1px solid #d0d7de; padding: 3px 6px; font-size: 12px; vertical-align: top; }
            #matrix td { min-width: 2.5em; text-align: center; cursor: pointer; }
            #matrix th.row { text-align: right; }
            #matrix thead th { writing-mode: vertical-rl; transform: rotate(180deg); }
            td.allow { background: #d1f7d6; } td.deny { background: #f6f8fa; color: #8c959f; }
            td.ungoverned { background: #fff8c5; color: #7d4e00; }
            td.audit { background: #fbefff; color: #8250df; } td[data-audit="true"] { border: 2px dashed #8250df; }
            td[data-change="opened"] { outline: 3px solid #2da44e; } td[data-change="closed"] { outline: 3px solid #cf222e; }
            td.selected { box-shadow: inset 0 0 0 2px #0969da; }
            #detail { position: sticky; top: 0; background: #ddf4ff; padding: 6px 10px; border: 1px solid #54aeff; margin: 8px 0; min-height: 1.4em; }
            code { font-family: ui-monospace, monospace; } .opened { color: #1a7f37; } .closed { color: #cf222e; }
            </style>
            </head>
            <body>
            <h1>zonewall policy report</h1>
            <p>\(policy.zones.count) zones, \(policy.zones.reduce(0) { $0 + $1.members.count }) members, \(policy.rules.count) allow rules. Green cells are allowed (the ports are written in the cell), grey cells denied, purple cells denied but passing because a zone is in audit mode (dashed: the rest of an allowed cell passes audited), yellow cells not governed by zonewall (neither end is a zone). Hover or click a cell to see the deciding rule.</p>

            """
        if let diff {
            out += "<h2 id=\"diff\">Changes against \(e(baseName ?? "the base")): \(e(diff.summary))</h2>\n"
            for (title, flows, moved, cls) in [("Opened", diff.opened, diff.openedForMoved, "opened"),
                                               ("Closed", diff.closed, diff.closedForMoved, "closed")] where !flows.isEmpty || !moved.isEmpty {
                out += "<h3 class=\"\(cls)\">\(title)</h3>\n<table><tr><th>from</th><th>to</th><th>ports</th><th>rule</th></tr>\n"
                for f in flows {
                    // The rules, and the failsafe ports where they are the cause.
                    let why = diff.sources(f, opened: cls == "opened").joined(separator: ", ")
                    out += "<tr><td>\(e(f.from.description))</td><td>\(e(f.to.description))</td><td><code>\(e(f.ports.joined(separator: ", ")))</code></td><td><code>\(e(why))</code></td></tr>\n"
                }
                // Addresses whose zone changed take their new zone's traffic, though no rule changed.
                for m in moved {
                    let (from, to) = m.outbound ? (diff.movedSide(m), m.peerLabel) : (m.peerLabel, diff.movedSide(m))
                    out += "<tr><td>\(e(from))</td><td>\(e(to))</td><td><code>\(e(m.ports.joined(separator: ", ")))</code></td><td>member change</td></tr>\n"
                }
                out += "</table>\n"
            }
            if !diff.membersAdded.isEmpty || !diff.membersRemoved.isEmpty {
                out += "<h3>Members</h3>\n<table><tr><th>zone</th><th>change</th><th>member</th></tr>\n"
                for m in diff.membersAdded { out += "<tr><td>\(e(m.zone))</td><td class=\"opened\">added</td><td><code>\(e(m.member))</code></td></tr>\n" }
                for m in diff.membersRemoved { out += "<tr><td>\(e(m.zone))</td><td class=\"closed\">removed</td><td><code>\(e(m.member))</code></td></tr>\n" }
                out += "</table>\n"
            }
            if !diff.zonesAdded.isEmpty { out += "<p>Zones added: <code>\(e(diff.zonesAdded.joined(separator: ", ")))</code></p>\n" }
            if !diff.zonesRemoved.isEmpty { out += "<p>Zones removed: <code>\(e(diff.zonesRemoved.joined(separator: ", ")))</code></p>\n" }
            for (a, word, cls, at) in [(diff.failsafeOpened, "opened", "opened", diff.newSettingsLocation),
                                       (diff.failsafeClosed, "closed", "closed", diff.oldSettingsLocation)] where !a.isEmpty {
                let place = at.map { " (settings at <code>\(e("\($0.path):\($0.line)"))</code>)" } ?? ""
                out += "<p class=\"\(cls)\" id=\"failsafe-\(cls)\">Failsafe ports \(word), \(e(PolicyDiff.failsafeMeaning)): <code>\(e(a.specs.joined(separator: ", ")))</code>\(place)</p>\n"
            }
            if !diff.auditAdded.isEmpty {
                out += "<p class=\"opened\" id=\"audit-added\">Audit mode on, denied but passes (audited), \(e(PolicyDiff.auditMeaning)): <code>\(e(diff.auditAdded.joined(separator: ", ")))</code></p>\n"
            }
            if !diff.settingsChanged.isEmpty {
                out += "<p id=\"settings\">Settings changed: " + diff.settingsChanged.map { "<code>\(e($0.key))</code> \(e($0.was)) → \(e($0.now))" }.joined(separator: ", ") + "</p>\n"
            }
            if !diff.auditRemoved.isEmpty {
                out += "<p class=\"closed\" id=\"audit-removed\">Audit mode off, denied again: <code>\(e(diff.auditRemoved.joined(separator: ", ")))</code></p>\n"
            }
        }

        out += "<h2>Reachability (rows: from, columns: to)</h2>\n"
        if shown.count < endpoints.count {
            out += "<p>The matrix shows the first \(shown.count) of \(endpoints.count) endpoints; <code>zonewall graph --zone NAME</code> shows any zone's neighbours.</p>\n"
        }
        out += "<div id=\"detail\">Click a cell.</div>\n<table id=\"matrix\">\n<thead><tr><th></th>"
        for t in shown { out += "<th>\(e(t.description))</th>" }
        out += "</tr></thead>\n<tbody>\n"
        for f in shown {
            out += "<tr><th class=\"row\">\(e(f.description))</th>"
            for t in shown {
                let pair = EndpointPair(from: f, to: t)
                let ids = "data-from=\"\(e(f.description))\" data-to=\"\(e(t.description))\""
                if !pair.isGoverned {
                    out += "<td class=\"ungoverned\" data-state=\"ungoverned\" \(ids) title=\"\(e("\(pair): not governed by zonewall"))\">·</td>"
                    continue
                }
                let access = model.access(pair)
                // Audit mode lets through whatever the pair does not admit: nothing to let through under `any`.
                let audited = model.isAudited(pair) && !access.isEverything
                var change = ""
                if opened[pair] != nil || (!access.isEverything && names(auditAdded, pair)) {
                    change = " data-change=\"opened\""
                } else if closed[pair] != nil || (!audited && !access.isEverything && names(auditRemoved, pair)) {
                    change = " data-change=\"closed\""
                }
                let auditNote = "denied but passes (audited)"
                if access.isEmpty && audited {
                    out += "<td class=\"audit\" data-state=\"audit\" \(ids)\(change) title=\"\(e("\(pair): no allow rule; \(auditNote)"))\">audit</td>"
                } else if access.isEmpty {
                    out += "<td class=\"deny\" data-state=\"deny\" \(ids)\(change) title=\"\(e("\(pair): denied, no allow rule"))\">–</td>"
                } else {
                    let specs = access.specs.joined(separator: ", ")
                    var rules = (model.rulesByPair[pair] ?? []).map { "\(place($0)) (\($0.ports.map(\.description).joined(separator: ", ")))" }
                    let failsafe = model.failsafeAccess(pair, within: access)
                    if !failsafe.isEmpty {
                        let at = policy.settings.location.map { " \($0.path):\($0.line)" } ?? ""
                        rules.append("settings.failsafe\(at) (\(failsafe.specs.joined(separator: ", ")))")
                    }
                    var title = "\(pair): \(specs)\nrule: \(rules.joined(separator: "; "))"
                    if audited { title += "\nother traffic: \(auditNote)" }
                    out += "<td class=\"allow\" data-state=\"allow\" \(ids)\(change)\(audited ? " data-audit=\"true\"" : "") data-ports=\"\(e(specs))\" data-rule=\"\(e(rules.joined(separator: "; ")))\" title=\"\(e(title))\">\(e(specs))</td>"
                }
            }
            out += "</tr>\n"
        }
        out += "</tbody>\n</table>\n"

        out += "<h2>Zones</h2>\n<table id=\"zones\"><tr><th>zone</th><th>description</th><th>members</th><th>identities</th><th>defined at</th></tr>\n"
        for z in policy.zones {
            let members = z.members.map(\.value.description).joined(separator: ", ")
            let ids = Membership.identities(of: z).joined(separator: ", ")
            out += "<tr data-zone=\"\(e(z.name))\"><td><b>\(e(z.name))</b></td><td>\(e(z.description ?? ""))</td><td><code>\(e(members.isEmpty ? "—" : members))</code></td><td>\(e(ids.isEmpty ? "—" : ids))</td><td><code>\(e(z.location.path)):\(z.location.line)</code></td></tr>\n"
        }
        out += "</table>\n"
        out += """
            <script>
            (function () {
              var detail = document.getElementById('detail');
              var cells = document.querySelectorAll('#matrix td[data-state]');
              cells.forEach(function (td) {
                td.addEventListener('click', function () {
                  cells.forEach(function (c) { c.classList.remove('selected'); });
                  td.classList.add('selected');
                  var what = td.dataset.state === 'allow' ? 'allowed: ' + td.dataset.ports + ' by ' + td.dataset.rule
                             + (td.dataset.audit ? '; other traffic: denied but passes (audited)' : '')
                           : td.dataset.state === 'deny' ? 'denied: no allow rule'
                           : td.dataset.state === 'audit' ? 'no allow rule; denied but passes (audited)' : 'not governed by zonewall';
                  detail.textContent = td.dataset.from + ' \\u2192 ' + td.dataset.to + ': ' + what
                    + (td.dataset.change ? ' (' + td.dataset.change + ' by this change)' : '');
                });
              });
              document.body.dataset.cells = String(cells.length);
              document.body.dataset.ready = 'true';
            })();
            </script>
            </body>
            </html>

            """
        return out
    }
}
