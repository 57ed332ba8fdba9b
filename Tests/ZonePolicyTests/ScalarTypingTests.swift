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
        BadInput("a negative log_group", "settings:\n  log_group: -1\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found -1, out of range"),
        BadInput("a negative log_rate", "settings:\n  log_rate: -100\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found -100, out of range"),
        BadInput("a log_rate with a leading zero (octal 64 to YAML 1.1)", "settings:\n  log_rate: 0100\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found the number 0100",
                 hint: "without leading zeros, a sign or '_'; YAML 1.1 readers (PyYAML) take 0100 as an octal number"),
        BadInput("a log_group with leading zeros", "settings:\n  log_group: 0017\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found the number 0017", hint: "plain decimal"),
        BadInput("a log_group of 00", "settings:\n  log_group: 00\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found the number 00", hint: "plain decimal"),
        BadInput("a signed log_rate", "settings:\n  log_rate: +100\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found the number +100", hint: "plain decimal"),
        BadInput("a log_group of -0", "settings:\n  log_group: -0\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found the number -0", hint: "plain decimal"),
        BadInput("a log_rate with separators", "settings:\n  log_rate: 1_000\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found the number 1_000", hint: "plain decimal"),
        BadInput("a log_rate tagged !!str", "settings:\n  log_rate: !!str 100\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found '100' tagged !!str", hint: "without a tag"),
        BadInput("a log_group tagged !!float", "settings:\n  log_group: !!float 100\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found '100' tagged !!float", hint: "without a tag"),
        BadInput("a log_group tagged !!int", "settings:\n  log_group: !!int 100\n", at: 2, 14,
                 "'log_group' must be an NFLOG group number 0..65535, found '100' tagged !!int", hint: "without a tag"),
        BadInput("a log_rate tagged !", "settings:\n  log_rate: ! 100\n", at: 2, 13,
                 "'log_rate' must be a number of packets per second 1..4294967295, found '100' tagged !", hint: "without a tag"),
        BadInput("an audit flag tagged !!str", "zones:\n  web:\n    audit: !!str true\n", at: 3, 12,
                 "'audit' must be true or false, found 'true' tagged !!str", hint: "without a tag"),
        BadInput("a log_denied flag tagged !", "settings:\n  log_denied: ! false\n", at: 2, 15,
                 "must be true or false, found 'false' tagged !", hint: "without a tag"),
        BadInput("a member tagged with a custom tag", "zones:\n  web:\n    members: [!include web.yaml]\n", at: 3, 15,
                 "YAML tag '!include' is not supported", hint: "no includes or references"),
        BadInput("a members list tagged with a custom tag", "zones:\n  web:\n    members: !ref [192.0.2.1]\n", at: 3, 14,
                 "YAML tag '!ref' is not supported", hint: "remove the tag"),
        BadInput("a member tagged !!int", "zones:\n  web:\n    members: [!!int 7]\n", at: 3, 15,
                 "a member of zone 'web' must be a string, found '7' tagged !!int", hint: "without a tag"),
        BadInput("a description tagged !!binary", "zones:\n  web:\n    description: !!binary aGVsbG8=\n", at: 3, 18,
                 "a zone's description must be a string, found 'aGVsbG8=' tagged !!binary", hint: "without a tag"),
        BadInput("a log_rate with a custom tag", "settings:\n  log_rate: !n 100\n", at: 2, 13,
                 "YAML tag '!n' is not supported"),
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
                description: !!str "123"
                members: [192.0.2.1, ! 192.0.2.2, !!str 192.0.2.3]
                lint: {ignore: unused-zone, reason: racked next quarter}
            settings:
              log_rate: 1000
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

    /// The ends of each range, written plainly, load.
    @Test func plainDecimalBoundsLoad() throws {
        let result = parse("settings:\n  log_group: 65535\n  log_rate: 4294967295\n")
        expectLoads(result)
        let policy = try #require(result.policy)
        #expect(policy.settings.logGroup == 65535)
        #expect(policy.settings.logRate == 4294967295)
        let low = try #require(parse("settings:\n  log_group: 0\n  log_rate: 1\n").policy)
        #expect(low.settings.logGroup == 0)
        #expect(low.settings.logRate == 1)
    }
}
