import Testing
@testable import ZonePolicy

/// The spellings of a port spec the README documents, and the one it refuses.
@Suite("Port specs: spellings")
struct PortSpecSpellingTests {
    @Test(arguments: [("ping", PortSpec.icmpEcho), ("PING", .icmpEcho), ("ICMP", .icmpEcho), ("Any", .any),
                      ("TCP/22", .ports(.tcp, 22...22)), ("Udp/53-54", .ports(.udp, 53...54)), ("SCTP", .wholeProtocol(.sctp))])
    func documentedSpellingsParse(_ text: String, _ expected: PortSpec) throws {
        #expect(try PortSpec.parse(text).get() == expected)
    }

    /// `icmpv6` read as `icmp` admitted IPv4 echo too: it is refused with the reason.
    @Test(arguments: ["icmpv6", "ICMPv6", "icmp6", "ipv6-icmp", "icmpv6/128"])
    func icmpv6IsAnErrorNotIcmp(_ text: String) {
        let result = parse(webAndDB + "allow:\n  - {from: web, to: db, ports: [\(text)]}\n")
        expectOnlyError(result, line: 5, column: 33, message: "'\(text)': there is no IPv6-only echo spec",
                        hint: "icmp covers echo for both IPv4 and IPv6")
    }

    @Test func pingTakesNoPort() {
        guard case .failure(let e) = PortSpec.parse("ping/8") else { Issue.record("ping/8 parsed"); return }
        #expect(e.message == "'ping/8': ping takes no port")
    }
}
