import Ruleset

/// A table that uses every construct zonewall's compiler generates, with the interval edge
/// cases: adjacent ranges, single addresses, ranges starting at zero and ending at the
/// largest address, the whole address space, non-prefix ranges, concatenated ranges and
/// verdict maps with jumps and gotos.
enum Fixtures {
    static let tcp: UInt8 = 6, udp: UInt8 = 17

    static var table: Table {
        let members4 = NamedSet(name: "members_v4", keyType: [.ipv4Address], flags: .interval, elements: [
            "0.0.0.0/8", "10.0.0.0/24", "10.0.1.0/24", "192.0.2.5", "198.51.100.7-198.51.100.20", "255.255.255.0/24",
        ].map { SetElement(key: [V.net($0)]) })
        let members6 = NamedSet(name: "members_v6", keyType: [.ipv6Address], flags: .interval, elements: [
            "::1", "2001:db8::/32", "2001:db9::-2001:db9::ff", "ffff::/16",
        ].map { SetElement(key: [V.net($0)]) })
        let everything4 = NamedSet(name: "world_v4", keyType: [.ipv4Address], flags: .interval,
                                   elements: [SetElement(key: [V.net("0.0.0.0/0")])])
        let everything6 = NamedSet(name: "world_v6", keyType: [.ipv6Address], flags: .interval,
                                   elements: [SetElement(key: [V.net("::/0")])])
        let empty = NamedSet(name: "empty_v4", keyType: [.ipv4Address], flags: .interval)
        let allow4 = NamedSet(name: "allow_v4", keyType: [.ipv4Address, .inetProtocol, .inetService], flags: .interval, elements: [
            SetElement(key: [V.net("198.51.100.10"), V.proto(tcp), V.port(8000, 8099)]),
            SetElement(key: [V.net("192.0.2.0/28"), V.proto(tcp), V.port(0, 65535)]),
            SetElement(key: [V.net("0.0.0.0/0"), V.proto(udp), V.port(53)]),
            SetElement(key: [V.net("255.255.255.255"), V.proto(tcp), V.port(65535)]),
        ])
        let allow6 = NamedSet(name: "allow_v6", keyType: [.ipv6Address, .inetProtocol, .inetService], flags: .interval, elements: [
            SetElement(key: [V.net("2001:db8::/32"), V.proto(udp), V.port(53)]),
            SetElement(key: [V.net("::/0"), V.proto(tcp), V.port(443)]),
            SetElement(key: [V.net("2001:db8::5"), V.proto(tcp), V.port(1, 1024)]),
        ])
        let src4 = NamedSet(name: "src_v4", keyType: [.ipv4Address], dataType: .verdict, flags: .interval, elements: [
            SetElement(key: [V.net("192.0.2.0/28")], data: .verdict(.jump("from_web"))),
            SetElement(key: [V.net("192.0.2.16/28")], data: .verdict(.jump("from_lan"))),
            SetElement(key: [V.net("10.0.0.0/8")], data: .verdict(.goto("from_lan"))),
            SetElement(key: [V.net("203.0.113.0-203.0.113.77")], data: .verdict(.accept)),
            SetElement(key: [V.net("255.255.255.255")], data: .verdict(.drop)),
        ])
        let src6 = NamedSet(name: "src_v6", keyType: [.ipv6Address], dataType: .verdict, flags: .interval, elements: [
            SetElement(key: [V.net("2001:db8:1::/48")], data: .verdict(.jump("from_web"))),
            SetElement(key: [V.net("fe80::/10")], data: .verdict(.drop)),
            SetElement(key: [V.net("ff00::/8")], data: .verdict(.jump("from_lan"))),
        ])
        let fromWeb = Chain(name: "from_web", rules: [
            Rule([.lookup([.ipDaddr, .l4proto, .thDport], set: "allow_v4", negated: false), .verdict(.accept)]),
            Rule([.lookup([.ip6Daddr, .l4proto, .thDport], set: "allow_v6", negated: false), .counter, .verdict(.accept)]),
            Rule([.match(.l4proto, .equal(V.u8(tcp))), .reject(.tcpReset)], comment: "refuse tcp"),
            Rule([.reject(.icmpxPortUnreachable)]),
        ])
        let fromLan = Chain(name: "from_lan", rules: [
            Rule([.lookup([.ipSaddr], set: "members_v4", negated: true), .verdict(.drop)]),
            Rule([.lookup([.ip6Saddr], set: "members_v6", negated: false), .verdict(.return)]),
            Rule([.match(.thDport, .inRange(V.u16(8000), V.u16(8099))), .verdict(.continue)]),
            Rule([.match(.thDport, .notEqual(V.u16(22))), .limit(perSecond: 10, burst: 5), .log(prefix: "zw lan: "), .verdict(.drop)]),
            Rule([.lookup([.ipSaddr], set: "world_v4", negated: false), .lookup([.ipDaddr], set: "empty_v4", negated: false),
                  .verdict(.accept)]),
            Rule([.lookup([.ip6Saddr], set: "world_v6", negated: false), .verdict(.accept)]),
            Rule([.verdict(.goto("from_web"))]),
        ])
        let forward = Chain(name: "forward", base: BaseChain(hook: .forward, priority: 0, policy: .accept), rules: [
            Rule([.match(.ctState, .anyBit(of: V.u32(2 | 4))), .verdict(.accept)]),
            Rule([.match(.ctState, .anyBit(of: V.u32(1))), .verdict(.drop)], comment: "invalid"),
            Rule([.match(.ctState, .notEqual(V.u32(8))), .counter]),
            Rule([.match(.icmpv6Type, .inRange(V.u8(133), V.u8(136))), .verdict(.accept)]),
            Rule([.match(.icmpType, .equal(V.u8(8))), .verdict(.accept)]),
            Rule([.match(.icmpv6Type, .equal(V.u8(128))), .verdict(.accept)]),
            Rule([.match(.nfproto, .equal(V.u8(10))), .match(.l4proto, .equal(V.u8(udp))), .match(.thDport, .equal(V.u16(53))), .verdict(.accept)]),
            Rule([.verdictMap([.ipSaddr], map: "src_v4")]),
            Rule([.verdictMap([.ip6Saddr], map: "src_v6")]),
            Rule([.match(.ipSaddr, .equal(V.v4("192.0.2.1"))), .match(.ipDaddr, .notEqual(V.v4("192.0.2.2"))), .verdict(.jump("from_web"))]),
            Rule([.match(.ip6Saddr, .equal(V.v6("2001:db8::1"))), .verdict(.jump("from_lan"))]),
        ])
        let input = Chain(name: "input", base: BaseChain(hook: .input, priority: -10, policy: .drop), rules: [
            Rule([.match(.ctState, .anyBit(of: V.u32(2 | 4))), .verdict(.accept)]),
            Rule([.match(.l4proto, .notEqual(V.u8(tcp))), .verdict(.accept)]),
        ])
        let output = Chain(name: "output", base: BaseChain(hook: .output, priority: 0, policy: .accept))
        return Table(family: .inet, name: "zonewall",
                     chains: [fromWeb, fromLan, forward, input, output],
                     sets: [members4, members6, everything4, everything6, empty, allow4, allow6, src4, src6])
    }
}
