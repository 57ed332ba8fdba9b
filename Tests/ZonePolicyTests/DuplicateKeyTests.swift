import Testing
@testable import ZonePolicy

/// A repeated mapping key is reported where it is repeated, with the first place in a note, and
/// the rest of the file is still read: every duplicate and every other problem is reported.
@Suite("Duplicate keys: every one reported, the file read on")
struct DuplicateKeyTests {
    @Test func everyDuplicateAndEveryOtherProblemIsReported() {
        let result = parse("""
            zones:
              web:
                members: [192.0.2.1]
                members: [192.0.2.2]
                colour: blue
            allow:
              - {from: web, to: web, ports: [tcp/22]}
              - {from: web, from: world, to: web, ports: [tcp/80]}
            settings: {denied: drop, denied: reject, log_rate: 0}
            settings: {denied: drop}
            expect: [{from: web, to: web, port: tcp/22, verdikt: allow}]

            """)
        expectDiagnostic(result, line: 4, column: 5, message: "duplicate key 'members' in zone 'web'", hint: "first written at policy.yaml:3:5")
        expectDiagnostic(result, line: 5, column: 5, message: "unknown key 'colour'")
        expectDiagnostic(result, line: 8, column: 17, message: "duplicate key 'from' in an allow rule", hint: "first written at policy.yaml:8:6")
        expectDiagnostic(result, line: 9, column: 26, message: "duplicate key 'denied' in settings", hint: "first written at policy.yaml:9:12")
        expectDiagnostic(result, line: 9, column: 52, message: "'log_rate' must be")
        expectDiagnostic(result, line: 10, column: 1, message: "duplicate key 'settings' in the top level", hint: "first written at policy.yaml:9:1")
        expectDiagnostic(result, line: 11, column: 45, message: "unknown key 'verdikt'")
        #expect(result.errors.count == 8, "\(dump(result))")
        #expect(result.policy == nil)
    }

    /// A key written three times, quoted or not, is reported at its second and third places.
    @Test func aKeyWrittenThreeTimesQuotedOrNot() {
        let result = parse("""
            zones:
              web: {members: [192.0.2.1]}
              "web": {members: [192.0.2.2]}
              'web': {members: [192.0.2.3]}
              db: {members: [203.0.113.5]}
            allow:
              - {from: web, to: db, ports: [tcp/5432]}

            """)
        expectDiagnostic(result, line: 3, column: 3, message: "duplicate key 'web' in zones", hint: "first written at policy.yaml:2:3")
        expectDiagnostic(result, line: 4, column: 3, message: "duplicate key 'web' in zones", hint: "first written at policy.yaml:2:3")
        #expect(result.errors.count == 2, "\(dump(result))")
    }

    /// Keys that are not plain names (a list as a key) are each reported as such: no key of a
    /// policy is a list, so whether two of them are equal does not matter.
    @Test func listKeysAreEachReported() {
        let result = parse("zones: {}\nallow: []\n? [a]\n: 1\n? [a]\n: 2\n")
        expectDiagnostic(result, line: 3, column: 3, message: "keys in the top level must be plain names, found a list")
        expectDiagnostic(result, line: 5, column: 3, message: "keys in the top level must be plain names, found a list")
        #expect(result.errors.count == 2, "\(dump(result))")
    }

    /// Hundreds of duplicates: the file is read once, and every repeat is reported where it is.
    @Test func manyDuplicatesAreEachReported() {
        let text = "zones:\n" + (1...300).map { _ in "  web: {members: [192.0.2.1]}\n" }.joined()
        let result = parse(text)
        #expect(result.errors.count == 299, "\(dump(result))")
        for line in [3, 100, 301] {
            expectDiagnostic(result, line: line, column: 3, message: "duplicate key 'web' in zones", hint: "first written at policy.yaml:2:3")
        }
    }
}
