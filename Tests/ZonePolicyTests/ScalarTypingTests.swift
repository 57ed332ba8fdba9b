import Testing
@testable import ZonePolicy

/// Scalars are typed one way everywhere: a quoted string is not a number or a boolean, numbers
/// and booleans are plain scalars, and free text is not a plain number.
@Suite("Settings and text: scalar types")
struct ScalarTypingTests {
    static let bad: [BadInput] = [
        BadInput("a quoted log_rate", "settings:\n  log_rate: \"100\"\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found the string '100'", hint: "without quotes"),
        BadInput("a quoted log_group", "settings:\n  log_group: '7'\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found the string '7'", hint: "without quotes"),
        BadInput("a quoted log_denied", "settings:\n  log_denied: \"true\"\n", at: 2, 15,
                 "'log_denied' must be true or false, found the string 'true'", hint: "without quotes"),
        BadInput("a null log_group", "settings:\n  log_group: null\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found nothing (null)"),
        BadInput("a huge log_rate", "settings:\n  log_rate: 99999999999999999999\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found 99999999999999999999, out of range"),
        BadInput("a zero log_rate", "settings:\n  log_rate: 0\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found 0, out of range"),
        BadInput("a log_group too large", "settings:\n  log_group: 65536\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found 65536, out of range"),
        BadInput("a hex log_rate", "settings:\n  log_rate: 0x64\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found the number 0x64", hint: "decimal"),
        BadInput("a word log_rate", "settings:\n  log_rate: fast\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found 'fast'"),
        BadInput("a numeric zone description", "zones:\n  web:\n    description: 123\n", at: 3, 18,
                 "a zone's description must be a string, found the number 123", hint: "\"123\""),
        BadInput("a boolean rule description", webAndDB + "allow:\n  - {from: web, to: db, ports: [any], description: true}\n", at: 5, 52,
                 "a rule's description must be a string, found the boolean true"),
        BadInput("an empty lint reason", "zones:\n  web:\n    lint: {ignore: empty-zone, reason: \"\"}\n", at: 3, 40,
                 "'reason' is empty", hint: "say why"),
        BadInput("a blank lint reason", "zones:\n  web:\n    lint: {ignore: empty-zone, reason: \"  \\t \"}\n", at: 3, 40,
                 "'reason' is empty"),
        BadInput("a null lint reason", "zones:\n  web:\n    lint: {ignore: empty-zone, reason: ~}\n", at: 3, 40,
                 "'reason' must be a string, found nothing (null)"),
    ]

    @Test(arguments: bad)
    func isRefused(_ input: BadInput) {
        expectOnlyError(parse(input.yaml), line: input.line, column: input.column, message: input.message, hint: input.hint)
    }

    @Test func plainNumbersBooleansAndQuotedTextLoad() throws {
        let result = parse("""
            zones:
              web:
                description: "123"
                members: [192.0.2.1]
                lint: {ignore: unused-zone, reason: racked next quarter}
            settings:
              log_rate: 1_000
              log_group: 0
              log_denied: true
              ct_mark_bits: "0x30ff"

            """)
        expectLoads(result)
        let policy = try #require(result.policy)
        #expect(policy.settings.logRate == 1000)
        #expect(policy.settings.logGroup == 0)
        #expect(policy.settings.logDenied)
        #expect(policy.zones.first?.description == "123")
    }
}
