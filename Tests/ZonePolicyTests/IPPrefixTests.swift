import Testing
@testable import ZonePolicy

/// Addresses and prefixes, as text and inside a policy.
@Suite struct IPPrefixTests {
    /// A zone whose only member is `member`, written on line 3 from column 15 (inside `[ ]`).
    static func zone(member: String) -> String {
        """
        zones:
          web:
            members: [\(member)]

        """
    }

    static let malformed: [BadInput] = [
        BadInput("IPv4 octet over 255", zone(member: "192.0.2.300"), at: 3, 15, "'192.0.2.300' is not an IPv4 or IPv6 address or prefix",
                 hint: "192.0.2.0/24"),
        BadInput("IPv6 non-hex group", zone(member: "\"2001:db8::zz\""), at: 3, 15, "'2001:db8::zz' is not an IPv4 or IPv6 address"),
        BadInput("IPv4 prefix over 32", zone(member: "192.0.2.0/33"), at: 3, 15, "'192.0.2.0/33' is not an IPv4 or IPv6 address"),
        BadInput("IPv6 prefix over 128", zone(member: "\"2001:db8::/129\""), at: 3, 15, "'2001:db8::/129' is not"),
        BadInput("three octets", zone(member: "192.0.2"), at: 3, 15, "'192.0.2' is not"),
        BadInput("leading zero octet", zone(member: "192.0.02.1"), at: 3, 15, "'192.0.02.1' is not"),
        BadInput("empty prefix length", zone(member: "192.0.2.0/"), at: 3, 15, "'192.0.2.0/' is not"),
        BadInput("two double colons", zone(member: "\"2001::db8::1\""), at: 3, 15, "'2001::db8::1' is not"),
        BadInput("nine IPv6 groups", zone(member: "\"1:2:3:4:5:6:7:8:9\""), at: 3, 15, "'1:2:3:4:5:6:7:8:9' is not"),
        BadInput("embedded IPv4 not at the end", zone(member: "\"192.0.2.1::\""), at: 3, 15, "'192.0.2.1::' is not"),
        BadInput("a zone name", zone(member: "web"), at: 3, 15, "'web' is not an IPv4 or IPv6 address"),
    ]

    @Test(arguments: malformed)
    func malformedAddressesAndPrefixesAreRefused(_ input: BadInput) {
        expectOnlyError(parse(input.yaml), line: input.line, column: input.column, message: input.message, hint: input.hint)
    }

    @Test func malformedIPv6InABlockListIsReportedAtTheItem() {
        expectOnlyError(parse("""
            zones:
              web:
                members:
                  - 192.0.2.16/28
                  - 2001:db8::zz

            """), line: 5, column: 9, message: "'2001:db8::zz' is not an IPv4 or IPv6 address or prefix")
    }

    static let hostBits: [BadInput] = [
        BadInput("IPv4", zone(member: "192.0.2.1/24"), at: 3, 15, "prefix '192.0.2.1/24' has host bits set",
                 hint: "did you mean '192.0.2.0/24'?"),
        BadInput("IPv6", zone(member: "\"2001:db8::1/64\""), at: 3, 15, "prefix '2001:db8::1/64' has host bits set",
                 hint: "did you mean '2001:db8::/64'?"),
        BadInput("IPv6 mid-group", zone(member: "\"2001:db8:10:ff::/52\""), at: 3, 15, "host bits set",
                 hint: "did you mean '2001:db8:10::/52'?"),
        BadInput("IPv4 /0", zone(member: "10.0.0.0/0"), at: 3, 15, "host bits set", hint: "did you mean '0.0.0.0/0'?"),
    ]

    @Test(arguments: hostBits)
    func prefixWithHostBitsSuggestsTheNetwork(_ input: BadInput) {
        expectOnlyError(parse(input.yaml), line: input.line, column: input.column, message: input.message, hint: input.hint)
    }

    @Test func ipv6FormsParse() throws {
        let loopback = try #require(IPPrefix.parse("::1"))
        #expect(loopback == IPPrefix(family: .ipv6, address: 1, length: 128))
        #expect(loopback.description == "::1")

        let doc = try #require(IPPrefix.parse("2001:db8::"))
        #expect(doc == IPPrefix(family: .ipv6, address: UInt128(0x2001_0db8) << 96, length: 128))
        #expect(doc.description == "2001:db8::")

        let mapped = try #require(IPPrefix.parse("::ffff:192.0.2.1"))
        #expect(mapped == IPPrefix(family: .ipv6, address: 0xffff_c000_0201, length: 128))
        #expect(IPPrefix.parse("0:0:0:0:0:ffff:c000:201") == mapped)

        #expect(IPPrefix.parse("::") == IPPrefix(family: .ipv6, address: 0, length: 128))
        #expect(IPPrefix.parse("2001:DB8:0:0::1/128") == IPPrefix.parse("2001:db8::1"))
        #expect(IPPrefix.parse("2001:db8:10::/64")?.description == "2001:db8:10::/64")
        // RFC 5952: the longest zero run is compressed, a single zero group is not.
        #expect(IPPrefix.parse("2001:db8:0:1:0:0:0:1")?.description == "2001:db8:0:1::1")
        // RFC 5952 §5: IPv4-mapped addresses keep their dotted tail, however they were written.
        #expect(IPPrefix.parse("::ffff:192.0.2.1")?.description == "::ffff:192.0.2.1")
        #expect(IPPrefix.parse("0:0:0:0:0:ffff:c000:201")?.description == "::ffff:192.0.2.1")
        #expect(IPPrefix.parse("::ffff:c633:6400/120")?.description == "::ffff:198.51.100.0/120")
        #expect(IPPrefix.parse("::fffe:c000:201")?.description == "::fffe:c000:201")
        #expect(IPPrefix.parse("192.0.2.0/24") == IPPrefix(family: .ipv4, address: 0xc000_0200, length: 24))
    }

    @Test func ipv6FormsLoadAsZoneMembers() throws {
        let result = parse("""
            zones:
              local: {members: ["::1", "2001:db8::", "::ffff:192.0.2.1", "2001:db8:10::/64"]}
            allow:
              - from: local
                to: host
                ports: [any]

            """)
        expectLoads(result)
        let members = try #require(result.policy?.zone(named: "local")?.members)
        #expect(members.map(\.value) == ["::1", "2001:db8::", "::ffff:192.0.2.1", "2001:db8:10::/64"].compactMap(IPPrefix.parse))
        #expect(members.map(\.location.column) == [21, 28, 42, 62])
    }
}

/// The byte-level parser's grammar at its edges.
@Suite struct IPPrefixGrammarTests {
    static let refused = [":::", "1:::2", "::::", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8::",
                          "12345::", "g::", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.256", "1.2.3.4/+2", "1.2.3.4/2/3",
                          "/24", "", "::ffff:1.2.3", "::1.2.3.4:5", "1.2.3.4::", "2001:db8::/", "::/-1", "é::1"]
    static let accepted: [(String, String)] = [
        ("::", "::/128"), ("::1", "::1/128"), ("1::", "1::/128"), ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0/128"),
        ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8/128"), ("2001:DB8::AbCd", "2001:db8::abcd/128"),
        ("::ffff:192.0.2.1/128", "::ffff:192.0.2.1/128"), ("1:2:3:4:5:6:192.0.2.1", "1:2:3:4:5:6:c000:201/128"),
        ("0.0.0.0/0", "0.0.0.0/0"), ("192.0.2.0/024", "192.0.2.0/24"), ("255.255.255.255", "255.255.255.255/32"),
    ]

    @Test(arguments: refused) func refusesMalformedText(_ text: String) {
        #expect(IPPrefix.parse(text) == nil)
    }

    @Test(arguments: accepted) func acceptsEveryWellFormedShape(_ text: String, _ expected: String) throws {
        let p = try #require(IPPrefix.parse(text))
        #expect("\(p.description.contains("/") ? p.description : p.description + "/\(p.length)")" == expected)
    }
}
