import Testing
@testable import ZonePolicy

/// YAML-level problems and values of the wrong shape.
@Suite struct DocumentShapeTests {
    @Test func yamlSyntaxErrorIsReportedWhereLibyamlFindsIt() {
        let result = parse("""
            zones:
              web:
                description: web: frontends
                members: [192.0.2.16/28]

            """)
        let d = expectOnlyError(result, line: 3, column: 21, message: "YAML syntax")
        #expect(d?.message.contains("mapping values are not allowed") == true)
        #expect(d?.description.hasPrefix("policy.yaml:3:21: error: YAML syntax: ") == true)
    }

    /// A tab where YAML reads indentation: libyaml's words ("cannot start any token") get a hint.
    @Test func aTabIndentSaysSo() {
        let d = expectOnlyError(parse("zones:\n\tweb:\n    members: [192.0.2.0/24]\n"), line: 2, column: 1, message: "YAML syntax")
        #expect(d?.hint == "this line is indented with a tab; YAML indents with spaces only", "\(String(describing: d))")
        // Other syntax errors get no such hint.
        #expect(expectOnlyError(parse("zones:\n  web: {members: [192.0.2.0/24]\n"), line: 3, column: 1, message: "YAML syntax")?.hint == nil)
    }

    /// A control character is reported at its line and column, not at the file's start.
    @Test func aControlCharacterIsReportedWhereItIs() {
        let d = expectOnlyError(parse("zones:\n  web:\n    members: [192.0.2.0/24]\n    description: a\u{07}b\n"),
                                line: 4, column: 19, message: "YAML reader: control characters are not allowed")
        #expect(d?.hint?.contains("no control characters but tab, newline and carriage return") == true)
    }

    @Test func unknownKeysAreRefusedAtEveryLevelWithASpellingHint() {
        let result = parse("""
            zones:
              web:
                member: [192.0.2.16/28]
            allow:
              - from: world
                to: web
                port: [tcp/443]
            settings:
              denyed: drop
            expect:
              - { from: world, to: web, ports: tcp/443, verdict: allow }
            zone: {}
            colour: red

            """)
        expectDiagnostic(result, line: 3, column: 5, message: "unknown key 'member' in zone 'web'", hint: "did you mean 'members'?")
        expectDiagnostic(result, line: 7, column: 5, message: "unknown key 'port' in an allow rule", hint: "did you mean 'ports'?")
        expectDiagnostic(result, line: 9, column: 3, message: "unknown key 'denyed' in settings", hint: "did you mean 'denied'?")
        expectDiagnostic(result, line: 11, column: 29, message: "unknown key 'ports' in an expectation", hint: "did you mean 'port'?")
        expectDiagnostic(result, line: 12, column: 1, message: "unknown key 'zone' in the top level", hint: "did you mean 'zones'?")
        // Nothing is close: the hint lists what is allowed.
        expectDiagnostic(result, line: 13, column: 1, message: "unknown key 'colour' in the top level",
                         hint: "allowed keys: allow, expect, settings, zones")
        // The misspelt required keys are then missing: a typo never weakens the policy silently.
        expectDiagnostic(result, line: 5, column: 5, message: "allow rule has no 'ports'")
        expectDiagnostic(result, line: 11, column: 5, message: "expectation has no 'port'")
        #expect(result.errors.count == 8, "\(dump(result))")
        #expect(result.policy == nil)
    }

    static let wrongTypes: [BadInput] = [
        BadInput("zones as a list", """
            zones: [web, api]

            """, at: 1, 8, "zones must be a mapping, found a list"),
        BadInput("members as a string", """
            zones:
              web:
                members: 192.0.2.16/28

            """, at: 3, 14, "members of zone 'web' must be a list, found '192.0.2.16/28'", hint: "[a, b]"),
        BadInput("from as a mapping", """
            zones:
              web: {members: [192.0.2.16/28]}
            allow:
              - from: {zone: web}
                to: web
                ports: [any]

            """, at: 4, 11, "'from' must be a string, found a mapping"),
        BadInput("log_denied as a quoted string", """
            settings:
              log_denied: "yes"

            """, at: 2, 15, "'log_denied' must be true or false, found the string 'yes'", hint: "without quotes"),
        BadInput("log_denied as a YAML 1.1 word", """
            settings:
              log_denied: yes

            """, at: 2, 15, "'log_denied' must be true or false"),
        BadInput("denied as a number", """
            settings:
              denied: 5

            """, at: 2, 11, "'denied' must be drop or reject, found '5'"),
        BadInput("a member as a number", """
            zones:
              web:
                members: [5]

            """, at: 3, 15, "'5' is not an IPv4 or IPv6 address or prefix"),
    ]

    @Test(arguments: wrongTypes)
    func wrongTypesAreReportedAtTheValue(_ input: BadInput) {
        expectOnlyError(parse(input.yaml), line: input.line, column: input.column, message: input.message, hint: input.hint)
    }

    @Test func nullMeansEmptyNotAString() {
        // `web:` with nothing after it is a zone with no members, and `zones:` with nothing is no zones.
        let empty = parse("""
            zones:
              web:
            allow:
              - from: world
                to: web
                ports: [tcp/443]

            """)
        expectLoads(empty)
        #expect(empty.policy?.zone(named: "web")?.members == [])
        expectLoads(parse("zones:\nallow:\nexpect:\n"))
        // A null endpoint is not a zone called "~".
        expectOnlyError(parse("""
            allow:
              - from: ~
                to: host
                ports: [any]

            """), line: 2, column: 11, message: "'from' must be a string, found nothing (null)")
    }

    /// Nine levels of ten aliases: 10⁹ scalars when expanded.
    static func billionLaughs() -> String {
        var s = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for i in 1..<9 {
            s += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        return s + "zones:\n  web:\n    members: *a8\n"
    }

    @Test func aliasExpansionBombIsRefused() {
        let d = expectOnlyError(parse(Self.billionLaughs()), line: 1, column: 1, message: "through aliases; refusing to expand it",
                                hint: "billion laughs")
        #expect(d?.message.contains("expands to more than") == true)
    }

    @Test func aliasesWithinTheBudgetStillWork() {
        let result = parse("""
            zones:
              web:
                members: &frontends [192.0.2.16/28]
            allow:
              - from: &outside world
                to: web
                ports: [tcp/443]
              - from: *outside
                to: web
                ports: [tcp/80]

            """)
        expectLoads(result)
        #expect(result.policy?.rules.map(\.from) == [[.world], [.world]])
    }
}

struct AliasKeyTests {
    @Test func aliasAsMappingKeyIsRefusedWithoutExpanding() throws {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 { yaml += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        yaml += "zones:\n  ? *a9\n  : x\n"
        let result = PolicyLoader.parse([PolicyFile(path: "bomb.yaml", contents: yaml)])
        #expect(result.policy == nil)
        let e = try #require(result.errors.first { $0.message.contains("alias cannot be used as a mapping key") })
        #expect(e.location.line == 12)
        #expect(e.location.column == 5)  // the alias itself, after the `?` key indicator
        let flow = PolicyLoader.parse([PolicyFile(path: "f.yaml", contents: "x: &k web\nzones: {*k: {members: [192.0.2.1]}}\n")])
        #expect(flow.errors.first?.location.line == 2)
        #expect(flow.errors.first?.location.column == 9)
    }

    @Test func aliasesAsValuesStillWork() {
        let yaml = "zones:\n  web: {members: &m [192.0.2.1]}\nallow:\n  - {from: web, to: world, ports: &p [tcp/443]}\n  - {from: world, to: web, ports: *p}\n"
        let result = PolicyLoader.parse([PolicyFile(path: "ok.yaml", contents: yaml)])
        #expect(result.errors.isEmpty, "\(result.errors)")
        #expect(result.policy?.rules.count == 2)
    }
}
