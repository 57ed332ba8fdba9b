import Testing
@testable import ZonePolicy

/// Warnings point at likely mistakes but never stop a policy from loading.
@Suite struct WarningTests {
    @Test func zoneWithNoMembersIsAWarning() {
        let result = parse("""
            zones:
              web:
              api: {members: []}
              db: {members: [203.0.113.5]}
            allow:
              - {from: [web, api], to: db, ports: [tcp/5432]}

            """)
        expectLoads(result)
        expectDiagnostic(result, .warning, line: 2, column: 3, message: "zone 'web' has no members", hint: "it matches no traffic")
        expectDiagnostic(result, .warning, line: 3, column: 3, message: "zone 'api' has no members")
        #expect(result.warnings.count == 2, "\(dump(result))")
    }

    @Test func ruleCoveredByAnotherRuleIsAWarning() {
        let result = parse(webAndDB + """
            allow:
              - from: [world, db]
                to: web
                ports: [tcp]
              - from: world
                to: web
                ports: [tcp/443, tcp/8000-8099]
              - from: web
                to: db
                ports: [tcp/5432]
              - from: web
                to: db
                ports: [tcp/5432]
              - from: web
                to: db
                ports: [udp/5432]

            """)
        expectLoads(result)
        expectDiagnostic(result, .warning, line: 8, column: 5, message: "this allow rule is already covered by the rule at policy.yaml:5:5",
                         hint: "remove it, or narrow the other rule")
        // Of two identical rules only the later one is redundant.
        expectDiagnostic(result, .warning, line: 14, column: 5, message: "already covered by the rule at policy.yaml:11:5")
        #expect(result.warnings.count == 2, "udp/5432 is not covered by tcp/5432:\n\(dump(result))")
    }

    @Test func zoneNoRuleMentionsIsAWarning() {
        let result = parse(webAndDB + """
              ops: {members: [198.51.100.200]}
            allow:
              - {from: world, to: web, ports: [tcp/443]}
              - {from: web, to: db, ports: [tcp/5432]}
            expect:
              - {from: ops, to: db, port: tcp/5432, verdict: deny}

            """)
        expectLoads(result)
        expectDiagnostic(result, .warning, line: 4, column: 3, message: "no allow rule mentions zone 'ops'",
                         hint: "all its traffic to and from other zones, world and host is denied")
        #expect(result.warnings.count == 1, "an expectation is not a rule:\n\(dump(result))")
    }
}
