import Testing
@testable import ZonePolicy

/// YAML merge keys are refused once, without the errors they would cascade into; an alias used
/// in the wrong place is reported where it is used.
@Suite("Merge keys and aliases: reported where written")
struct MergeAndAliasTests {
    @Test func aMergeKeyIsOneErrorWithoutCascade() {
        let merged = parse(webAndDB + """
            allow:
              - &r {from: web, to: db, ports: [tcp/5432]}
              - <<: *r
                ports: [tcp/22]
            expect:
              - {<<: *r, port: tcp/22, verdict: allow}

            """)
        expectDiagnostic(merged, line: 6, column: 5, message: "merge keys (<<) are not supported; write the keys out")
        expectDiagnostic(merged, line: 9, column: 6, message: "merge keys (<<) are not supported; write the keys out")
        #expect(merged.errors.count == 2, "no 'unknown key' or 'has no from' cascade: \(dump(merged))")
        #expect(!merged.diagnostics.contains { $0.message.contains("unknown key") || $0.message.contains("has no") })
    }

    @Test func anAliasOfAddressesUsedAsPortsIsReportedAtTheAlias() {
        let result = parse("""
            zones:
              web:
                members: &addrs [192.0.2.1]
              db: {members: [203.0.113.5]}
            allow:
              - from: web
                to: db
                ports: *addrs

            """)
        expectOnlyError(result, line: 8, column: 12, message: "bad port spec '192.0.2.1'",
                        hint: "through the alias *addrs; the value is written at policy.yaml:3:22")
    }

    /// An alias as a list item (`[*p, tcp/22]`) is reported at the alias, named, with the
    /// anchored value's place in the note: in ports, members, `from` lists and whole rules.
    @Test func anAliasInAListIsReportedAtTheAlias() {
        let result = parse("""
            zones:
              web:
                members: [&one 192.0.2.1, &port tcp/99999]
              db: {members: [203.0.113.5]}
            allow:
              - {from: web, to: db, ports: [tcp/22, *port]}
              - {from: [web, *one], to: db, ports: [tcp/80]}

            """)
        expectDiagnostic(result, line: 6, column: 41, message: "bad port spec 'tcp/99999'",
                         hint: "through the alias *port; the value is written at policy.yaml:3:31")
        expectDiagnostic(result, line: 7, column: 18, message: "'192.0.2.1'")
        // The member itself is reported where it is written, the alias where it is misused.
        expectDiagnostic(result, line: 3, column: 31, message: "tcp/99999")
    }

    @Test func anAliasedRuleIsReportedAtTheAlias() {
        let result = parse("""
            zones:
              web: {members: [192.0.2.1]}
              db: {members: [203.0.113.5]}
            x-rules:
              - &r {from: web, to: db, ports: [tcp/0]}
            allow:
              - *r

            """)
        expectDiagnostic(result, line: 7, column: 5, message: "bad port spec 'tcp/0'",
                         hint: "through the alias *r; the value is written at policy.yaml:5:36")
    }

    /// Aliases to an anchor in the same flow list, and a whole zone written as an alias: each
    /// use is reported at its own alias, once, with the note; the anchored value at its place.
    @Test func repeatedAliasesAreEachReportedAtTheirOwnPlace() {
        let rules = parse("""
            zones:
              web: {members: [192.0.2.1]}
              api: {members: [192.0.2.2]}
            allow: [&r {from: web, to: api, ports: [tcp/99999]}, *r, *r]

            """)
        expectDiagnostic(rules, line: 4, column: 41, message: "bad port spec 'tcp/99999'")
        expectDiagnostic(rules, line: 4, column: 54, message: "bad port spec 'tcp/99999'",
                         hint: "through the alias *r; the value is written at policy.yaml:4:41")
        expectDiagnostic(rules, line: 4, column: 58, message: "bad port spec 'tcp/99999'",
                         hint: "through the alias *r; the value is written at policy.yaml:4:41")
        #expect(rules.errors.count == 3, "\(dump(rules))")

        let zones = parse("""
            zones:
              web: &w {members: [192.0.2.16/28], audit: yes}
              api: *w

            """)
        expectDiagnostic(zones, line: 2, column: 45, message: "'audit' must be true or false")
        expectDiagnostic(zones, line: 3, column: 8, message: "'audit' must be true or false",
                         hint: "through the alias *w; the value is written at policy.yaml:2:45")
    }
}
