import TestSupport
import ZonePolicy

/// Random policies over the documentation ranges, with nested prefixes, both families,
/// world/host rules and every kind of port spec.
enum RandomPolicy {
    static let v4Base: [UInt128] = [0xC000_0200, 0xC633_6400, 0xCB00_7100]  // 192.0.2.0, 198.51.100.0, 203.0.113.0
    static let v6Base: UInt128 = 0x2001_0db8 << 96

    static func member<G: RandomNumberGenerator>(_ g: inout G) -> IPPrefix {
        if Bool.random(using: &g) {
            let base = v4Base.randomElement(using: &g)!
            let len = [24, 25, 26, 27, 28, 29, 30, 31, 32].randomElement(using: &g)!
            let host = UInt128(UInt8.random(in: 0...255, using: &g))
            return IPPrefix(family: .ipv4, address: base | host, length: len).normalized
        } else {
            let len = [48, 56, 64, 96, 120, 128].randomElement(using: &g)!
            let sub = UInt128(UInt16.random(in: 0...3, using: &g)) << 80
            let low = UInt128(UInt8.random(in: 0...255, using: &g))
            return IPPrefix(family: .ipv6, address: v6Base | sub | low, length: len).normalized
        }
    }

    static func spec<G: RandomNumberGenerator>(_ g: inout G) -> PortSpec {
        let proto = TransportProtocol.allCases.randomElement(using: &g)!
        switch Int.random(in: 0..<10, using: &g) {
        case 0: return .any
        case 1: return .icmpEcho
        case 2: return .wholeProtocol(proto)
        case 3, 4:
            let lo = UInt16.random(in: 1...60, using: &g)
            return .ports(proto, lo...(lo + UInt16.random(in: 0...20, using: &g)))
        default:
            let a = [22, 53, 80, 443, 5432].randomElement(using: &g)! as UInt16
            let b = [22, 53, 80, 443, 5432].randomElement(using: &g)! as UInt16
            return .ports(proto, Swift.min(a, b)...Swift.max(a, b))
        }
    }

    static func make(seed: UInt64, zones zoneCount: Int = 6, rules ruleCount: Int = 10) -> Policy {
        var g = SplitMix64(seed: seed)
        var used = Set<IPPrefix>()
        var zones: [Zone] = []
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)
        for i in 0..<zoneCount {
            var members: [Located<IPPrefix>] = []
            for _ in 0..<Int.random(in: 0...4, using: &g) {
                let p = member(&g)
                if used.insert(p).inserted { members.append(Located(p, at: loc)) }
            }
            zones.append(Zone(name: "z\(i)", members: members, location: loc))
        }
        func endpoint() -> Endpoint {
            switch Int.random(in: 0..<8, using: &g) {
            case 0: .world
            case 1: .host
            default: .zone("z\(Int.random(in: 0..<zoneCount, using: &g))")
            }
        }
        var rules: [AllowRule] = []
        for i in 0..<ruleCount {
            let from = (0..<Int.random(in: 1...2, using: &g)).map { _ in endpoint() }
            let to = (0..<Int.random(in: 1...2, using: &g)).map { _ in endpoint() }
            let ports = (0..<Int.random(in: 1...3, using: &g)).map { _ in spec(&g) }
            rules.append(AllowRule(from: from, to: to, ports: ports, location: SourceLocation(path: "gen.yaml", line: i + 2, column: 5)))
        }
        return Policy(zones: zones, rules: rules, settings: Settings(denied: Bool.random(using: &g) ? .drop : .reject))
    }
}

