import Testing
import ZonePolicy
@testable import PolicyReview

/// `PolicyDiff` is computed from meaning: equal meaning gives no change, and every change is named.
@Suite struct DiffSemanticsTests {
    static let base = """
          - from: [web, api]
            to: db
            ports: [tcp/5432]
          - from: world
            to: web
            ports: [tcp/443, icmp]
          - from: web
            to: api
            ports: [udp/5000-5010, tcp/8443]

        """

    /// Rewritings that keep the meaning: no change.
    static let sameMeaning: [(String, String)] = [
        ("rules reordered", """
              - from: web
                to: api
                ports: [udp/5000-5010, tcp/8443]
              - from: world
                to: web
                ports: [icmp, tcp/443]
              - from: [api, web]
                to: db
                ports: [tcp/5432]

            """),
        ("from split into two rules, ranges split, single port as a range", """
              - from: web
                to: db
                ports: [tcp/5432]
              - from: api
                to: db
                ports: [tcp/5432-5432]
              - from: world
                to: [web]
                ports: [tcp/443, icmp]
              - from: web
                to: api
                ports: [udp/5000-5004, tcp/8443-8443]
              - from: web
                to: api
                ports: [udp/5005-5010]

            """),
        ("overlapping ranges and a duplicated rule", """
              - from: [web, api]
                to: db
                ports: [tcp/5432]
              - from: [web, api]
                to: db
                ports: [tcp/5432]
              - from: world
                to: web
                ports: [tcp/443, icmp]
              - from: web
                to: api
                ports: [udp/5000-5008, udp/5003-5010, tcp/8443]

            """),
        ("a rule between world and host, which zonewall does not govern", base + """
              - from: world
                to: host
                ports: [tcp/22]

            """),
    ]

    @Test(arguments: 0..<sameMeaning.count)
    func rewritingsThatKeepTheMeaningAreNoChange(_ i: Int) {
        let (name, rules) = Self.sameMeaning[i]
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: rules))
        #expect(diff.isEmpty, "\(name): \(diff.text)")
        #expect(diff.text == "no change in meaning\n")
    }

    @Test func renamingAndSplittingFilesIsNoChange() {
        let a = load(["zones.yaml": zonesYAML, "rules.yaml": "allow:\n" + Self.base])
        let b = load(["00-everything.yaml": zonesYAML + "allow:\n" + Self.base])
        #expect(PolicyDiff(from: a, to: b).isEmpty)
    }

    @Test func relistingTheSameAddressesIsNoChange() {
        let listed = zonesYAML.replacingOccurrences(of: "[192.0.2.16/28, \"2001:db8:10::/64\"]",
                                                    with: "[192.0.2.16/29, 192.0.2.24/29, \"2001:db8:10::/65\", \"2001:db8:10:0:8000::/65\", 192.0.2.17]")
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: Self.base, zones: listed))
        #expect(diff.isEmpty, "\(diff.text)")
    }

    @Test func portRangeArithmeticNamesExactlyWhatChanged() {
        let narrowed = Self.base.replacingOccurrences(of: "[udp/5000-5010, tcp/8443]", with: "[udp/5000-5003, udp/5008-5020, tcp]")
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: narrowed))
        #expect(diff.opened.map(\.ports) == [["tcp/1-8442", "tcp/8444-65535", "udp/5011-5020"]])
        #expect(diff.closed.map(\.ports) == [["udp/5004-5007"]])
        #expect(diff.opened.first?.pair == EndpointPair(from: .zone("web"), to: .zone("api")))
        // The closing rule is named in the old policy, the opening one in the new.
        #expect(diff.opened.first?.rules.map(\.location.line) == [8])
        #expect(diff.closed.first?.rules.map(\.location.line) == [8])
    }

    @Test func wholeProtocolAnyAndIcmpAreWrittenInThePolicyLanguage() {
        let before = policy(rules: "  - {from: api, to: db, ports: [any]}\n")
        let after = policy(rules: "  - {from: api, to: db, ports: [tcp/1-65535, udp, sctp/1-100, icmp]}\n")
        let diff = PolicyDiff(from: before, to: after)
        #expect(diff.opened.isEmpty)
        #expect(diff.closed.map(\.ports) == [["sctp/101-65535", "other"]])
        let reverse = PolicyDiff(from: after, to: before)
        #expect(reverse.opened.map(\.ports) == [["sctp/101-65535", "other"]])
        let fresh = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: Self.base + "  - {from: api, to: cache, ports: [any]}\n"))
        #expect(fresh.opened.map(\.ports) == [["any"]])
        #expect(fresh.json.rendered.contains("\"ports\": [\"any\"]"))
    }

    @Test func worldAndHostAreEndpointsOfTheirOwn() {
        let after = Self.base.replacingOccurrences(of: "ports: [tcp/443, icmp]", with: "ports: [tcp/443]")
            + "  - {from: host, to: [web, api], ports: [tcp/9100]}\n  - {from: db, to: world, ports: [tcp/443]}\n"
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: after))
        #expect(diff.closed.map { "\($0.pair): \($0.ports)" } == ["world → web: [\"icmp\"]"])
        #expect(diff.opened.map { "\($0.pair): \($0.ports)" }
                == ["db → world: [\"tcp/443\"]", "host → api: [\"tcp/9100\"]", "host → web: [\"tcp/9100\"]"])
    }

    @Test func listsOnBothSidesOpenEveryPair() {
        let diff = PolicyDiff(from: policy(rules: Self.base),
                              to: policy(rules: Self.base + "  - {from: [web, api], to: [cache, backend], ports: [tcp/6379]}\n"))
        #expect(diff.opened.map(\.pair.description) == ["api → backend", "api → cache", "web → backend", "web → cache"])
        #expect(diff.summary == "opens 4 flows, closes 0")
    }

    @Test func aMemberMovedBetweenNestedZonesIsARemovalAndAnAddition() {
        // 203.0.113.21 was cache's through its /29 (inside backend's /24); listing it in db moves it.
        let moved = zonesYAML.replacingOccurrences(of: "[203.0.113.5, 203.0.113.6]", with: "[203.0.113.5, 203.0.113.6, 203.0.113.21]")
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: Self.base, zones: moved))
        #expect(diff.membersAdded.map { "\($0.zone) \($0.member)" } == ["db 203.0.113.21"])
        #expect(diff.membersRemoved.map { "\($0.zone) \($0.member)" } == ["cache 203.0.113.21"])
        #expect(diff.opened.isEmpty && diff.closed.isEmpty)
    }

    /// A pull-request comment has a size limit (GitHub's 65,536 characters): a larger markdown
    /// diff loses its graph first, then is cut at a line end, with a note saying so.
    @Test func markdownStaysWithinACommentsLimit() {
        var zones = "zones:\n"
        for i in 0..<1500 { zones += "  z\(i): {members: [\"2001:db8:\(String(i, radix: 16))::1\"]}\n" }
        let before = load(zones)
        var rules = zones + "allow:\n"
        for i in 0..<1500 { rules += "  - {from: z\(i), to: z\((i + 1) % 1500), ports: [tcp/\(1000 + i), udp/53]}\n" }
        let diff = PolicyDiff(from: before, to: load(rules))
        #expect(diff.opened.count == 1500)
        let whole = diff.markdown(limit: .max)
        #expect(whole.utf16.count > PolicyDiff.markdownLimit && whole.contains("```mermaid"))
        let capped = diff.markdown
        #expect(capped.utf16.count <= PolicyDiff.markdownLimit)
        #expect(capped.hasPrefix("### zonewall: opens 1500 flows"))
        #expect(!capped.contains("```mermaid"))
        #expect(capped.hasSuffix("`zonewall diff` (text) or `--format json` shows all of it.\n"))
        let cut = capped.components(separatedBy: "\n\n> **The diff is cut here:**")[0]
        #expect(whole.hasPrefix(cut) && cut.hasSuffix("|\n"), "cut at the end of a table row")
        // Just over the whole body without the graph: the graph goes, nothing is cut.
        let noGraph = diff.markdown(limit: whole.utf16.count - 1)
        #expect(!noGraph.contains("```mermaid") && !noGraph.contains("cut here") && noGraph.contains("graph of changed flows is left out"))
        #expect(noGraph.contains("| z1499 | z0 |"))
    }

    /// Settings change what passes or what is logged without a rule changing: each changed key
    /// is listed with its values before and after, and the diff is not empty (exit 5).
    @Test func settingsChangesAreShown() {
        let zones = "zones:\n  web: {members: [192.0.2.1]}\nallow:\n  - {from: web, to: world, ports: [tcp/443]}\n"
        let before = load(zones)
        let after = load(zones + "settings: {denied: reject, log_denied: true, revoke_established: false}\n")
        let diff = PolicyDiff(from: before, to: after)
        #expect(!diff.isEmpty)
        #expect(diff.summary == "opens 0 flows, closes 0, changes denied, log_denied, revoke_established", "\(diff.summary)")
        #expect(diff.text.contains("settings:\n  ~ denied: drop → reject\n  ~ log_denied: false → true\n  ~ revoke_established: true → false\n"), "\(diff.text)")
        #expect(diff.markdown.contains("- `revoke_established`: `true` → `false`"), "\(diff.markdown)")
        #expect(diff.json.rendered.contains("\"key\": \"denied\""), "\(diff.json.rendered)")
        #expect(PolicyDiff(from: before, to: load(zones)).isEmpty)
    }

    /// Renaming zones moves every address, and nothing changes between them: the moved-address
    /// flows compare each address's old zone pair with its new one, not with the new policy's names.
    @Test func renamingZonesMovesNoTraffic() {
        let before = load("zones:\n  a: {members: [192.0.2.1]}\n  b: {members: [192.0.2.2]}\nallow:\n  - {from: a, to: b, ports: [tcp/80]}\n")
        let after = load("zones:\n  c: {members: [192.0.2.1]}\n  d: {members: [192.0.2.2]}\nallow:\n  - {from: c, to: d, ports: [tcp/80]}\n")
        let diff = PolicyDiff(from: before, to: after)
        #expect(diff.openedForMoved.isEmpty && diff.closedForMoved.isEmpty, "\(diff.text)")
        // What the names say is still said: c → d opened, a → b closed, with the zones.
        #expect(diff.summary == "opens 1 flow, closes 1, 4 member changes, adds 2 zones, removes 2 zones", "\(diff.summary)")
    }

    /// Deleting a zone hands its addresses to `world`: whatever `world` may do or receive, they
    /// now may too, though no rule changed. The diff says so, and counts it as opening traffic.
    @Test func addressesLeavingEveryZoneTakeWorldsTraffic() {
        let before = load("""
            zones:
              a: {members: [192.0.2.1]}
              b: {members: [192.0.2.2]}
            allow:
              - {from: b, to: world, ports: [any]}
              - {from: a, to: b, ports: [tcp/1]}

            """)
        let after = load("""
            zones:
              b: {members: [192.0.2.2]}
            allow:
              - {from: b, to: world, ports: [any]}

            """)
        let diff = PolicyDiff(from: before, to: after)
        #expect(diff.opens)
        #expect(diff.openedForMoved.map { "\(diff.describe($0)): \($0.ports)" }.contains("b → 192.0.2.1 (was a, now world): [\"any\"]"))
        #expect(diff.summary.hasPrefix("opens 5 flows, closes 2"), "\(diff.summary)")
        // And back: a new zone takes the addresses out of world's traffic.
        let back = PolicyDiff(from: after, to: before)
        #expect(back.closedForMoved.map { "\(back.describe($0)): \($0.ports)" }.contains("b → 192.0.2.1 (was world, now a): [\"any\"]"))
        #expect(back.text.contains("  - b → 192.0.2.1 (was world, now a): any  (member change)\n"), "\(back.text)")
    }

    @Test func aPrefixRemovedFromAnOuterZoneGoesBackToWhatHoldsIt() {
        // cache's /29 sits inside backend's /24: dropping it hands the addresses back to backend.
        let dropped = zonesYAML.replacingOccurrences(of: "cache: {members: [203.0.113.16/29]}", with: "cache: {members: [203.0.113.16/30]}")
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: Self.base, zones: dropped))
        #expect(diff.membersAdded.map { "\($0.zone) \($0.member)" } == ["backend 203.0.113.20/30"])
        #expect(diff.membersRemoved.map { "\($0.zone) \($0.member)" } == ["cache 203.0.113.20/30"])
    }

    @Test func zonesAddedAndRemovedWithTheirMembersAndFlows() {
        let renamed = zonesYAML.replacingOccurrences(of: "cache:", with: "redis:")
        let diff = PolicyDiff(from: policy(rules: Self.base + "  - {from: api, to: cache, ports: [tcp/6379]}\n"),
                              to: policy(rules: Self.base + "  - {from: api, to: redis, ports: [tcp/6379]}\n", zones: renamed))
        #expect(diff.zonesAdded == ["redis"])
        #expect(diff.zonesRemoved == ["cache"])
        #expect(diff.membersAdded.map(\.member) == ["203.0.113.16/29"])
        #expect(diff.opened.map(\.pair.description) == ["api → redis"])
        #expect(diff.closed.map(\.pair.description) == ["api → cache"])
    }

    /// Units, cgroups, users and interfaces are members too: a unit moved between zones is a
    /// removal from one and an addition to the other, written as `explain` endpoints.
    @Test func identitiesMovedShowAsRemovalAndAddition() {
        let before = zonesYAML.replacingOccurrences(of: "db: {members: [203.0.113.5, 203.0.113.6]}",
                                                    with: "db: {members: [203.0.113.5, 203.0.113.6], units: [pg.service], users: [postgres]}")
        let after = zonesYAML.replacingOccurrences(of: "cache: {members: [203.0.113.16/29]}",
                                                   with: "cache: {members: [203.0.113.16/29], units: [pg.service], interfaces: [\"veth-c*\"]}")
            .replacingOccurrences(of: "db: {members: [203.0.113.5, 203.0.113.6]}",
                                  with: "db: {members: [203.0.113.5, 203.0.113.6], users: [postgres]}")
        let diff = PolicyDiff(from: policy(rules: Self.base, zones: before), to: policy(rules: Self.base, zones: after))
        #expect(diff.membersRemoved.map { "\($0.zone) \($0.member)" } == ["db unit:pg.service"])
        #expect(diff.membersAdded.map { "\($0.zone) \($0.member)" }.sorted() == ["cache iface:veth-c*", "cache unit:pg.service"])
        #expect(diff.opened.isEmpty && diff.closed.isEmpty)
    }

    /// `settings.failsafe` opens its ports to this host from every zone (and world) whatever the
    /// rules: adding one is an opening of zone → host for every zone not already allowed them.
    @Test func failsafePortsAreOpeningsToTheHostFromEveryZone() {
        let before = policy(rules: Self.base + "  - {from: db, to: host, ports: [tcp/3306]}\n")
        let after = policy(rules: Self.base + "  - {from: db, to: host, ports: [tcp/3306]}\nsettings:\n  failsafe: [tcp/3306]\n")
        let diff = PolicyDiff(from: before, to: after)
        #expect(!diff.isEmpty && diff.opens)
        #expect(diff.failsafeOpened.specs == ["tcp/3306"])
        #expect(diff.closed.isEmpty)
        // db → host already had tcp/3306 by a rule: no change there.
        #expect(diff.opened.map { "\($0.pair): \($0.ports)" }
                == ["api → host: [\"tcp/3306\"]", "backend → host: [\"tcp/3306\"]", "cache → host: [\"tcp/3306\"]", "web → host: [\"tcp/3306\"]"])
        #expect(diff.opened.allSatisfy { $0.failsafe.specs == ["tcp/3306"] && $0.rules.isEmpty })
        #expect(diff.summary == "opens 4 flows, closes 0, failsafe opens tcp/3306")
        #expect(diff.text.contains("  + web → host: tcp/3306  (settings.failsafe rules.yaml:"))
        #expect(diff.text.contains("failsafe (inbound to this host from every zone and world, whatever the rules):\n  + tcp/3306  (settings at rules.yaml:"))
        #expect(diff.markdown.contains("#### Failsafe ports"))
        #expect(diff.json.rendered.contains("\"failsafe\": {\n    \"closed\": [],\n    \"opened\": [\"tcp/3306\"]\n  }"))

        let reverse = PolicyDiff(from: after, to: before)
        #expect(!reverse.isEmpty && !reverse.opens)
        #expect(reverse.failsafeClosed.specs == ["tcp/3306"])
        #expect(reverse.closed.map(\.pair.description) == ["api → host", "backend → host", "cache → host", "web → host"])
        #expect(reverse.summary == "opens 0 flows, closes 4, failsafe closes tcp/3306")

        // The same failsafe port, also written as a rule, is no change.
        let ruled = policy(rules: Self.base + "  - {from: [web, api, backend, db, cache], to: host, ports: [tcp/3306]}\n")
        let same = PolicyDiff(from: after, to: policy(rules: Self.base + "  - {from: [web, api, backend, db, cache], to: host, ports: [tcp/3306]}\nsettings:\n  failsafe: [tcp/3306]\n"))
        #expect(same.opened.isEmpty && same.closed.isEmpty, "\(same.text)")
        let onlyPorts = PolicyDiff(from: ruled, to: after)
        #expect(onlyPorts.opened.isEmpty && onlyPorts.closed.isEmpty && onlyPorts.failsafeOpened.specs == ["tcp/3306"])
        #expect(!onlyPorts.isEmpty)
    }

    /// Audit mode lets a zone's denied traffic pass (logged): turning it on opens, off closes.
    @Test func auditModeIsAnOpeningPerZone() {
        let enforced = policy(rules: Self.base)
        let all = policy(rules: Self.base + "settings:\n  audit: true\n")
        let one = policy(rules: Self.base, zones: zonesYAML.replacingOccurrences(of: "db: {members: [203.0.113.5, 203.0.113.6]}",
                                                                                 with: "db: {members: [203.0.113.5, 203.0.113.6], audit: true}"))
        let d1 = PolicyDiff(from: enforced, to: one)
        #expect(!d1.isEmpty && d1.opens)
        #expect(d1.auditAdded == ["db"] && d1.auditRemoved.isEmpty)
        #expect(d1.summary == "opens 0 flows, closes 0, audits 1 zone (denied but passes)")
        #expect(d1.text.contains("  + db: denied but passes (audited)\n"))
        #expect(d1.markdown.contains("denied but passes (audited): `db`"))
        #expect(d1.json.rendered.contains("\"audit\": {\n    \"added\": [\"db\"],\n    \"removed\": []\n  }"))

        let dAll = PolicyDiff(from: one, to: all)
        #expect(dAll.auditAdded == ["api", "backend", "cache", "web"])
        let off = PolicyDiff(from: all, to: enforced)
        #expect(off.auditRemoved == ["api", "backend", "cache", "db", "web"] && !off.opens && !off.isEmpty)
        #expect(off.text.contains("  - web: denied again (audit off)\n"))
        #expect(PolicyDiff(from: all, to: all).isEmpty)
    }

    @Test func jsonIsStableWithEveryKeyPresent() {
        let moved = zonesYAML.replacingOccurrences(of: "[203.0.113.5, 203.0.113.6]", with: "[203.0.113.5, 203.0.113.6, 203.0.113.21]")
        let after = Self.base.replacingOccurrences(of: "ports: [tcp/443, icmp]", with: "ports: [tcp/443]")
            + "  - {from: web, to: db, ports: [tcp/5432]}\n  - {from: cache, to: db, ports: [tcp/5432]}\n"
        let diff = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: after, zones: moved))
        #expect(diff.json.rendered == """
            {
              "audit": {
                "added": [],
                "removed": []
              },
              "closed": [
                {
                  "from": "world",
                  "ports": ["icmp"],
                  "to": "web"
                }
              ],
              "failsafe": {
                "closed": [],
                "opened": []
              },
              "members": {
                "added": [
                  {
                    "member": "203.0.113.21",
                    "zone": "db"
                  }
                ],
                "removed": [
                  {
                    "member": "203.0.113.21",
                    "zone": "cache"
                  }
                ]
              },
              "moved": {
                "closed": [],
                "opened": [
                  {
                    "direction": "from peer",
                    "members": ["203.0.113.21"],
                    "now": "db",
                    "peer": "api",
                    "peerWas": "api",
                    "ports": ["tcp/5432"],
                    "was": "cache"
                  },
                  {
                    "direction": "from peer",
                    "members": ["203.0.113.21"],
                    "now": "db",
                    "peer": "cache",
                    "peerWas": "cache",
                    "ports": ["tcp/5432"],
                    "was": "cache"
                  },
                  {
                    "direction": "from peer",
                    "members": ["203.0.113.21"],
                    "now": "db",
                    "peer": "web",
                    "peerWas": "web",
                    "ports": ["tcp/5432"],
                    "was": "cache"
                  }
                ]
              },
              "opened": [
                {
                  "from": "cache",
                  "ports": ["tcp/5432"],
                  "to": "db"
                }
              ],
              "settings": [],
              "zones": {
                "added": [],
                "removed": []
              }
            }

            """)
        let none = PolicyDiff(from: policy(rules: Self.base), to: policy(rules: Self.base))
        #expect(none.json.rendered == "{\n  \"audit\": {\n    \"added\": [],\n    \"removed\": []\n  },\n  \"closed\": [],\n  \"failsafe\": {\n    \"closed\": [],\n    \"opened\": []\n  },\n  \"members\": {\n    \"added\": [],\n    \"removed\": []\n  },\n  \"moved\": {\n    \"closed\": [],\n    \"opened\": []\n  },\n  \"opened\": [],\n  \"settings\": [],\n  \"zones\": {\n    \"added\": [],\n    \"removed\": []\n  }\n}\n")
    }
}

/// The value types under the diff.
@Suite struct AccessTests {
    @Test func portSetsMergeIntoMaximalRanges() {
        let s = PortSet([5005...5010, 5000...5004, 22...22, 20...21, 8000...8099, 8050...8200])
        #expect(s.ranges == [20...22, 5000...5010, 8000...8200])
        #expect(s.subtracting(PortSet([21...21, 5000...5010, 8100...9000])).ranges == [20...20, 22...22, 8000...8099])
        #expect(PortSet.all.subtracting(PortSet([1...1, 65535...65535])).ranges == [2...65534])
        #expect(s.count == 3 + 11 + 201)
    }

    @Test func accessSpecsAreSortedPolicyLanguage() {
        let a = Access([.icmpEcho, .ports(.udp, 53...53), .ports(.tcp, 443...443), .ports(.tcp, 80...80), .wholeProtocol(.sctp)])
        #expect(a.specs == ["tcp/80", "tcp/443", "udp/53", "sctp", "icmp"])
        #expect(Access([.ports(.tcp, 1...65535)]).specs == ["tcp"])
        #expect(Access([.any, .ports(.tcp, 1...2)]).specs == ["any"])
    }

    @Test func addressRangesBecomeTheFewestPrefixes() {
        let r = AddressRange(family: .ipv4, first: 0xC000_0201, last: 0xC000_0206)
        #expect(r.prefixes.map(\.description) == ["192.0.2.1", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6"])
        let all = AddressRange(family: .ipv6, first: 0, last: .max)
        #expect(all.prefixes.map(\.description) == ["::/0"])
        let v4all = AddressRange(family: .ipv4, first: 0, last: 0xFFFF_FFFF)
        #expect(v4all.prefixes.map(\.description) == ["0.0.0.0/0"])
    }
}
