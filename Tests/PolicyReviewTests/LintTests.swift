import Testing
import ZonePolicy
@testable import PolicyReview

/// Least-privilege lints: each is reported at its rule or zone with a hint, and silenced by `lint:`.
@Suite struct LintTests {
    static let zones = """
        zones:
          web: {members: [192.0.2.16/28]}
          api: {members: [198.51.100.10]}
          db: {members: [203.0.113.5]}

        """

    func lints(_ rules: String, zones: String = LintTests.zones) -> (LoadResult, [Diagnostic]) {
        let result = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: zones + "allow:\n" + rules)])
        return (result, result.policy.map(Lint.check) ?? [])
    }

    func only(_ ds: [Diagnostic], line: Int, _ message: String, hint: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(ds.count == 1, "\(ds.map(\.description))", sourceLocation: sourceLocation)
        guard let d = ds.first else { return }
        #expect(d.severity == .warning, sourceLocation: sourceLocation)
        #expect(d.location == ZonePolicy.SourceLocation(path: "p.yaml", line: line, column: 5), sourceLocation: sourceLocation)
        #expect(d.message.contains(message), "\(d.message)", sourceLocation: sourceLocation)
        #expect(d.hint?.contains(hint) == true, "\(d.hint ?? "")", sourceLocation: sourceLocation)
    }

    static let fine = "  - {from: web, to: api, ports: [tcp/443]}\n  - {from: api, to: db, ports: [tcp/5432]}\n"

    @Test func worldWithAnyOrAWholeProtocol() {
        only(lints(Self.fine + "  - {from: world, to: web, ports: [any]}\n").1, line: 8, "whole world send any traffic", hint: "ignore: [world-open]")
        only(lints(Self.fine + "  - {from: [world], to: web, ports: [udp]}\n").1, line: 8, "every udp port", hint: "udp/443")
        #expect(lints(Self.fine + "  - {from: world, to: web, ports: [tcp/443, icmp]}\n").1.isEmpty)
    }

    /// By what the rule admits, however it is spelled: a whole protocol as a range or in pieces,
    /// or a range wider than wide-ports allows between zones.
    /// Every zone towards this host is the usual shape (and the lock-out warning's own advice).
    @Test func everyZoneToHostIsNotWarned() {
        let all = "  - {from: [web, api, db], to: host, ports: [tcp/22]}\n"
        #expect(lints(Self.fine + all).1.isEmpty, "\(lints(Self.fine + all).1)")
        only(lints(Self.fine + "  - {from: [web, api, db], to: [host, db], ports: [tcp/22]}\n").1, line: 8, "'from' names every zone",
             hint: "a zone added later is not in it")
    }

    @Test func worldOpenWhateverTheSpelling() {
        only(lints(Self.fine + "  - {from: world, to: web, ports: [tcp/1-65535]}\n").1, line: 8, "every tcp port", hint: "tcp/443")
        only(lints(Self.fine + "  - {from: world, to: web, ports: [tcp/1-32767, tcp/32768-65535]}\n").1, line: 8, "every tcp port", hint: "tcp/443")
        only(lints(Self.fine + "  - {from: world, to: web, ports: [tcp/1-40000]}\n").1, line: 8, "reach 40000 tcp ports (more than 1024)",
             hint: "ignore: [world-open]")
        #expect(lints(Self.fine + "  - {from: world, to: web, ports: [tcp/1000-2023]}\n").1.isEmpty)
    }

    @Test func moreThan1024PortsBetweenZones() {
        only(lints(Self.fine + "  - {from: web, to: db, ports: [tcp/1000-2024]}\n").1, line: 8, "opens 1025 tcp ports between zones", hint: "wide-ports")
        #expect(lints(Self.fine + "  - {from: web, to: db, ports: [tcp/1000-2023]}\n").1.isEmpty)
        // Toward world it is not between zones.
        #expect(lints(Self.fine + "  - {from: web, to: world, ports: [tcp]}\n").1.isEmpty)
    }

    @Test func fromOrToCoveringEveryZone() {
        only(lints(Self.fine + "  - {from: [web, api, db], to: world, ports: [tcp/443]}\n").1, line: 8, "'from' names every zone (3)", hint: "every-zone")
    }

    @Test func silencedOnTheRuleWithAReason() {
        let (result, ds) = lints(Self.fine + """
              - from: world
                to: web
                ports: [any]
                lint: {ignore: [world-open], reason: "a honeypot"}
              - from: [web, api, db]
                to: host
                ports: [tcp]
                lint: {ignore: [every-zone], reason: "monitoring agent"}

            """)
        #expect(result.policy?.rules[2].lint == LintIgnore(kinds: [.worldOpen], reason: "a honeypot"))
        // Only what is not silenced remains: every tcp port from every zone to host is no wide-ports (host is no zone).
        #expect(ds.isEmpty, "\(ds.map(\.description))")
    }

    @Test func existingWarningsAreSilencedToo() {
        let (result, _) = lints("""
              - {from: web, to: api, ports: [tcp/443]}
              - {from: web, to: api, ports: [tcp/443], lint: {ignore: covered, reason: "kept while we migrate"}}
              - {from: api, to: db, ports: [tcp/5432]}

            """, zones: Self.zones.replacingOccurrences(of: "db: {members: [203.0.113.5]}",
                                                         with: "db: {members: [203.0.113.5]}\n  spare: {lint: {ignore: [empty-zone, unused-zone], reason: \"next quarter\"}}"))
        #expect(result.warnings.isEmpty, "\(result.warnings.map(\.description))")
        let (loud, _) = lints("  - {from: web, to: api, ports: [tcp/443]}\n  - {from: web, to: api, ports: [tcp/443]}\n  - {from: api, to: db, ports: [tcp/5432]}\n")
        #expect(loud.warnings.map(\.message) == ["this allow rule is already covered by the rule at p.yaml:6:5"])
        #expect(loud.warnings.first?.hint?.contains("ignore: [covered]") == true)
    }

    @Test func aLintEntryNeedsKnownKindsAndAReason() {
        let (bad, _) = lints("  - {from: web, to: api, ports: [tcp/443], lint: {ignore: [world-opn]}}\n")
        let messages = bad.errors.map { "\($0.location.line):\($0.location.column) \($0.message) | \($0.hint ?? "")" }
        #expect(messages.contains { $0.hasPrefix("6:") && $0.contains("unknown lint 'world-opn' | did you mean 'world-open'?") }, "\(messages)")
        #expect(messages.contains { $0.contains("'lint' has no 'reason'") }, "\(messages)")
        let (typo, _) = lints("  - {from: web, to: api, ports: [tcp/443], lint: {ignore: [covered], reson: x}}\n")
        #expect(typo.errors.contains { $0.message == "unknown key 'reson' in 'lint' of an allow rule" })
    }
}
