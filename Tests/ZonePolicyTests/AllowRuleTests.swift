import Testing
@testable import ZonePolicy

/// Allow rules: endpoints and port specs.
@Suite struct AllowRuleTests {
    /// A rule whose second port spec is `spec`, on line 6 at column 22.
    static func rule(ports spec: String) -> String {
        """
        zones:
          web: {members: [192.0.2.16/28]}
        allow:
          - from: world
            to: web
            ports: [tcp/443, \(spec)]

        """
    }

    static let badPorts: [BadInput] = [
        BadInput("port 0", rule(ports: "tcp/0"), at: 6, 22, "bad port spec 'tcp/0': port 0 is out of range", hint: "1..65535"),
        BadInput("port 65536", rule(ports: "tcp/65536"), at: 6, 22, "'tcp/65536': port 65536 is out of range", hint: "1..65535"),
        BadInput("reversed range", rule(ports: "tcp/90-80"), at: 6, 22, "'tcp/90-80': range 90-80 is reversed", hint: "write tcp/80-90"),
        BadInput("icmp with a port", rule(ports: "icmp/8"), at: 6, 22, "'icmp/8': icmp takes no port", hint: "write 'icmp'"),
        BadInput("unknown protocol", rule(ports: "foo/80"), at: 6, 22, "'foo/80': unknown protocol 'foo'", hint: "tcp, udp, sctp"),
        BadInput("protocol without port", rule(ports: "tcp/"), at: 6, 22, "'tcp/': '' is not a port number"),
        BadInput("bare port", rule(ports: "80"), at: 6, 22, "'80': unknown protocol '80'", hint: "tcp, udp, sctp"),
        BadInput("open range", rule(ports: "udp/53-"), at: 6, 22, "'udp/53-': '' is not a port number"),
        BadInput("letters", rule(ports: "tcp/http"), at: 6, 22, "'tcp/http': 'http' is not a port number"),
        BadInput("negative", rule(ports: "udp/-1"), at: 6, 22, "'udp/-1': port -1 is out of range", hint: "1..65535"),
        BadInput("a list", rule(ports: "[tcp/1]"), at: 6, 22, "a port spec must be a string, found a list"),
    ]

    @Test(arguments: badPorts)
    func badPortSpecsAreRefused(_ input: BadInput) {
        expectOnlyError(parse(input.yaml), line: input.line, column: input.column, message: input.message, hint: input.hint)
    }

    @Test func badPortSpecInAnExpectationIsRefused() {
        expectOnlyError(parse(webAndDB + """
            expect:
              - { from: world, to: web, port: tcp/0, verdict: allow }

            """), line: 5, column: 35, message: "bad port spec 'tcp/0': port 0 is out of range")
    }

    @Test func missingOrEmptyPortsIsAnError() {
        let result = parse("""
            zones:
              web: {members: [192.0.2.16/28]}
            allow:
              - from: world
                to: web
              - from: world
                to: web
                ports: []
              - from: world
                to: web
                ports:
              - from: world
                to: web
                ports: ~

            """)
        expectDiagnostic(result, line: 4, column: 5, message: "allow rule has no 'ports'", hint: "write [any] for all traffic")
        expectDiagnostic(result, line: 8, column: 12, message: "'ports' is empty", hint: "write [any] for all traffic")
        expectDiagnostic(result, line: 11, column: 11, message: "'ports' is empty")
        expectDiagnostic(result, line: 14, column: 12, message: "'ports' is empty")
        #expect(result.errors.count == 4, "\(dump(result))")
        #expect(result.policy == nil)
    }

    @Test func missingFromAndToAreBothReported() {
        let result = parse(webAndDB + """
            allow:
              - ports: [tcp/443]
              - from: []
                to: web
                ports: [tcp/443]

            """)
        expectDiagnostic(result, line: 5, column: 5, message: "allow rule has no 'from'")
        expectDiagnostic(result, line: 5, column: 5, message: "allow rule has no 'to'")
        expectDiagnostic(result, line: 6, column: 11, message: "'from' must not be empty")
        #expect(result.errors.count == 3, "\(dump(result))")
    }

    /// A rule with a bad port spec still has its zone names checked: each problem is reported at once.
    @Test func unknownZonesOfARuleWithABadPortSpecAreReported() {
        let result = parse(webAndDB + """
            allow:
              - from: web
                to: [db, nosuch]
                ports: tcp/80
              - from: [web, nosuch2]
                to: db
                ports: [tcp/0]

            """)
        expectDiagnostic(result, line: 7, column: 12, message: "'ports' must be a list")
        expectDiagnostic(result, line: 6, column: 14, message: "unknown zone 'nosuch'")
        expectDiagnostic(result, line: 8, column: 17, message: "unknown zone 'nosuch2'")
        expectDiagnostic(result, line: 10, column: 13, message: "bad port spec 'tcp/0': port 0 is out of range")
        #expect(result.errors.count == 4, "\(dump(result))")
    }

    @Test func fromAndToTakeAScalarOrAList() throws {
        let result = parse(webAndDB + """
            allow:
              - from: web
                to: db
                ports: [tcp/5432]
              - from: [web]
                to: [db, host]
                ports: [tcp/22]
              - from:
                  - world
                  - host
                to: web
                ports: [tcp/443]

            """)
        expectLoads(result)
        let rules = try #require(result.policy?.rules)
        #expect(rules.map(\.from) == [[.zone("web")], [.zone("web")], [.world, .host]])
        #expect(rules.map(\.to) == [[.zone("db")], [.zone("db"), .host], [.zone("web")]])
        #expect(rules.map(\.location.line) == [5, 8, 11])
        #expect(rules.allSatisfy { $0.location.column == 5 })
    }

    static let portSpecs: [(String, PortSpec)] = [
        ("tcp/443", .ports(.tcp, 443...443)),
        ("udp/53-54", .ports(.udp, 53...54)),
        ("tcp/8000-8099", .ports(.tcp, 8000...8099)),
        ("tcp/1-65535", .ports(.tcp, 1...65535)),
        ("sctp/9899", .ports(.sctp, 9899...9899)),
        ("sctp", .wholeProtocol(.sctp)),
        ("tcp", .wholeProtocol(.tcp)),
        ("udp", .wholeProtocol(.udp)),
        ("icmp", .icmpEcho),
        ("any", .any),
        ("TCP/443", .ports(.tcp, 443...443)),
    ]

    @Test(arguments: portSpecs)
    func portSpecParses(_ text: String, _ expected: PortSpec) throws {
        let spec = try PortSpec.parse(text).get()
        #expect(spec == expected)
        #expect(try PortSpec.parse(spec.description).get() == spec, "the description reads back")
    }

    @Test func portSpecsLoadInARule() {
        let result = parse(Self.rule(ports: "udp/53-54, sctp, icmp, any"))
        expectLoads(result)
        #expect(result.policy?.rules.first?.ports == [.ports(.tcp, 443...443), .ports(.udp, 53...54), .wholeProtocol(.sctp), .icmpEcho, .any])
    }

    @Test func settingsAreRead() {
        let result = parse("settings:\n  denied: reject\n  log_denied: true\n")
        expectLoads(result)
        #expect(result.policy?.settings.denied == .reject)
        #expect(result.policy?.settings.logDenied == true)
        #expect(result.policy?.settings.location == ZonePolicy.SourceLocation(path: testPath, line: 1, column: 1))
        #expect(parse("zones:\n").policy?.settings == Settings(), "drop and no logging by default")
    }

    @Test func settingsInTwoFilesIsAnError() {
        let result = PolicyLoader.parse([
            PolicyFile(path: "b.yaml", contents: "settings:\n  log_denied: true\n"),
            PolicyFile(path: "a.yaml", contents: "zones:\nsettings:\n  denied: reject\n"),
        ])
        expectOnlyError(result, path: "b.yaml", line: 1, column: 1, message: "'settings' is given in more than one file",
                        hint: "first given at a.yaml:2:1")
    }
}
