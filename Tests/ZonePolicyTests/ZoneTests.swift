import Testing
@testable import ZonePolicy

/// Zone names, zone definitions and references to zones.
@Suite struct ZoneTests {
    @Test func unknownZoneInFromOrToNamesTheClosestZone() {
        let result = parse("""
            zones:
              db: {members: [203.0.113.5]}
              web: {members: [192.0.2.16/28]}
            allow:
              - from: web
                to: dbb
                ports: [tcp/5432]
              - from: [web, wev]
                to: world
                ports: [tcp/443]
              - from: web
                to: xyzzy123
                ports: [tcp/443]

            """)
        expectDiagnostic(result, line: 6, column: 9, message: "unknown zone 'dbb'", hint: "did you mean 'db'?")
        expectDiagnostic(result, line: 8, column: 17, message: "unknown zone 'wev'", hint: "did you mean 'web'?")
        let far = expectDiagnostic(result, line: 12, column: 9, message: "unknown zone 'xyzzy123'")
        #expect(far?.hint == nil, "no zone is close to 'xyzzy123'")
        #expect(result.errors.count == 3, "\(dump(result))")
        #expect(result.policy == nil)
    }

    @Test func unknownZoneInAnExpectationIsReported() {
        expectOnlyError(parse(webAndDB + """
            allow:
              - from: web
                to: db
                ports: [tcp/5432]
            expect:
              - { from: web, to: dbb, port: tcp/5432, verdict: allow }

            """), line: 9, column: 22, message: "unknown zone 'dbb'", hint: "did you mean 'db'?")
    }

    @Test func zoneDefinedInTwoFilesIsReportedAtTheSecond() {
        let a = PolicyFile(path: "a.yaml", contents: """
            zones:
              web:
                members: [192.0.2.16/28]

            """)
        let b = PolicyFile(path: "b.yaml", contents: """
            zones:
              api:
                members: [198.51.100.10]
              web:
                members: [192.0.2.32/28]

            """)
        // The order the files are given in does not matter: b.yaml sorts after a.yaml.
        let result = PolicyLoader.parse([b, a])
        let d = expectOnlyError(result, path: "b.yaml", line: 4, column: 3, message: "zone 'web' is defined twice",
                                hint: "first defined at a.yaml:2:3")
        #expect(d?.description == "b.yaml:4:3: error: zone 'web' is defined twice\nb.yaml:4:3: note: first defined at a.yaml:2:3")
    }

    @Test func zoneDefinedTwiceInOneFileIsADuplicateKey() {
        let block = parse("""
            zones:
              web:
                members: [192.0.2.16/28]
              db:
                members: [203.0.113.5]
              web:
                members: [192.0.2.32/28]

            """)
        let d = expectOnlyError(block, line: 6, column: 3, message: "duplicate key 'web'", hint: "first written at policy.yaml:2:3")
        #expect(d?.message.contains("members") == false, "the message must not dump the file: \(d?.message ?? "")")

        // A second `zones:` section in the same file is the same mistake one level up.
        let twoSections = parse("""
            zones:
              web: {members: [192.0.2.16/28]}
            allow:
              - {from: world, to: web, ports: [tcp/443]}
            zones:
              db: {members: [203.0.113.5]}

            """)
        expectOnlyError(twoSections, line: 5, column: 1, message: "duplicate key 'zones'", hint: "first written at policy.yaml:1:1")

        // In flow style too, the repeat is reported where it is.
        let flow = parse("""
            expect:
              - { from: world, from: web, to: web, port: tcp/80, verdict: allow }

            """)
        expectDiagnostic(flow, line: 2, column: 20, message: "duplicate key 'from'", hint: "first written at policy.yaml:2:7")

        // Past a handful of keys the reader remembers them by hash; the answer is the same.
        let many = parse("zones:\n" + (1...12).map { "  z\($0): {members: [198.51.100.\($0)]}\n" }.joined()
                         + "  z3: {members: [198.51.100.99]}\n")
        expectOnlyError(many, line: 14, column: 3, message: "duplicate key 'z3'", hint: "first written at policy.yaml:4:3")
    }

    @Test func samePrefixInTwoZonesIsAnError() {
        let result = parse("""
            zones:
              web:
                members: [192.0.2.16/28, "2001:db8:10::1"]
              api:
                members: [198.51.100.10, 192.0.2.16/28]
              ops:
                members: ["2001:DB8:10:0::1"]

            """)
        expectDiagnostic(result, line: 5, column: 30, message: "192.0.2.16/28 is in two zones, 'web' and 'api'",
                         hint: "also listed at policy.yaml:3:15")
        expectDiagnostic(result, line: 7, column: 15, message: "2001:db8:10::1 is in two zones, 'web' and 'ops'",
                         hint: "also listed at policy.yaml:3:30")
        #expect(result.errors.count == 2, "\(dump(result))")
        #expect(result.policy == nil)
    }

    @Test func samePrefixTwiceInOneZoneIsOnlyAWarning() {
        let result = parse("""
            zones:
              web: {members: [192.0.2.16/28, 192.0.2.16/28]}
            allow:
              - {from: world, to: web, ports: [tcp/443]}

            """)
        expectLoads(result)
        expectDiagnostic(result, .warning, line: 2, column: 34, message: "192.0.2.16/28 is listed twice in zone 'web'",
                         hint: "first listed at policy.yaml:2:19")
    }

    @Test func everyRepeatOfAPrefixIsReportedAgainstItsFirstListing() {
        let result = parse("""
            zones:
              web: {members: [192.0.2.16/28, 192.0.2.16/28, 192.0.2.32/28]}
              api: {members: [192.0.2.16/28, 192.0.2.33/32]}
              ops: {members: [192.0.2.16/28, 192.0.2.16/29]}

            """)
        expectDiagnostic(result, .warning, line: 2, column: 34, message: "192.0.2.16/28 is listed twice in zone 'web'",
                         hint: "first listed at policy.yaml:2:19")
        expectDiagnostic(result, line: 3, column: 19, message: "192.0.2.16/28 is in two zones, 'web' and 'api'",
                         hint: "also listed at policy.yaml:2:19")
        expectDiagnostic(result, line: 4, column: 19, message: "192.0.2.16/28 is in two zones, 'web' and 'ops'",
                         hint: "also listed at policy.yaml:2:19")
        // Nested prefixes are not duplicates (the longest prefix wins), nor is the same address with another length.
        #expect(result.errors.count == 2, "\(dump(result))")
        #expect(result.warnings.count == 1, "\(dump(result))")
    }

    @Test func reservedNamesCannotNameAZone() {
        let result = parse("""
            zones:
              world: {members: [0.0.0.0/0]}
              host: {members: [127.0.0.1]}

            """)
        expectDiagnostic(result, line: 2, column: 3, message: "'world' is reserved and cannot name a zone", hint: "pick another name")
        expectDiagnostic(result, line: 3, column: 3, message: "'host' is reserved and cannot name a zone", hint: "pick another name")
        #expect(result.errors.count == 2, "\(dump(result))")
        #expect(result.policy == nil)
    }

    static let thirtyThree = "a" + String(repeating: "b", count: 32)

    @Test(arguments: ["Web", "1web", thirtyThree, "we b", "_web", "web.1", "wéb"])
    func invalidZoneNamesAreRefused(_ name: String) {
        expectOnlyError(parse("""
            zones:
              \(name): {members: [192.0.2.1]}

            """), line: 2, column: 3, message: "invalid zone name '\(name)'", hint: "[a-z][a-z0-9_-]{0,31}")
    }

    @Test(arguments: ["w", "web-1_b", "a" + String(repeating: "b", count: 31)])
    func validZoneNamesAreAccepted(_ name: String) {
        let result = parse("""
            zones:
              \(name): {members: [192.0.2.1]}
            allow:
              - {from: \(name), to: world, ports: [any]}

            """)
        expectLoads(result)
        #expect(result.policy?.zones.map(\.name) == [name])
    }
}
