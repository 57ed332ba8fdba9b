import Ruleset
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// The evaluator behind `explain`/`test` and the compiled rule set must agree on every packet.
struct AgreementTests {
    /// Addresses worth probing: inside each member (first, last, middle), just outside, and unzoned.
    static func probeAddresses(_ policy: Policy, family: AddressFamily) -> [UInt128] {
        var out: Set<UInt128> = []
        for z in policy.zones {
            for m in z.members where m.value.family == family {
                let p = m.value
                out.formUnion([p.first, p.last, p.first + (p.last - p.first) / 2])
                if p.first > 0 { out.insert(p.first - 1) }
                if p.last < (family == .ipv4 ? UInt128(UInt32.max) : .max) { out.insert(p.last + 1) }
            }
        }
        out.insert(family == .ipv4 ? 0x0A00_0001 : (0x2001_0db8_ffff << 80) | 1)  // unzoned
        // Keep the cross product affordable: an even spread of at most `limit` addresses.
        let all = out.sorted(), limit = 10
        guard all.count > limit else { return all }
        return (0..<limit).map { all[$0 * all.count / limit] }
    }

    /// Flows covering every kind of spec: ports at and around rule boundaries, ICMP, other protocols.
    static func probeFlows(_ policy: Policy, family: AddressFamily) -> [(flow: Flow, packetProto: UInt8, offset2: UInt16, type: UInt8)] {
        var ports: Set<UInt16> = [1, 22, 443, 65535]
        for r in policy.rules {
            for case .ports(_, let range) in r.ports {
                ports.formUnion([range.lowerBound, range.upperBound])
                if range.lowerBound > 1 { ports.insert(range.lowerBound - 1) }
                if range.upperBound < 65535 { ports.insert(range.upperBound + 1) }
            }
        }
        var out: [(Flow, UInt8, UInt16, UInt8)] = []
        let sorted = ports.sorted()
        let sample = sorted.count <= 16 ? sorted : (0..<16).map { sorted[$0 * sorted.count / 16] }
        for proto in TransportProtocol.allCases {
            for p in sample { out.append((Flow(proto: proto.number, port: p), proto.number, p, 0)) }
        }
        let icmp: UInt8 = family == .ipv4 ? 1 : 58
        let echo: UInt8 = family == .ipv4 ? 8 : 128
        // ICMP: th dport reads the checksum, so try checksums that look like allowed ports.
        for checksum: UInt16 in [0, 22, 443, 0xffff] {
            out.append((Flow(proto: icmp, icmpType: echo), icmp, checksum, echo))
            out.append((Flow(proto: icmp, icmpType: 13), icmp, checksum, 13))
        }
        out.append((Flow(proto: 47), 47, 0, 0))  // GRE: only `any` admits it
        return out
    }

    func check(_ policy: Policy) {
        let table = ZoneCompiler.compile(policy)
        let interpreter = Interpreter(table)
        let evaluator = Evaluator(policy)
        var mismatches: [String] = []
        for family in AddressFamily.allCases {
            let addrs = Self.probeAddresses(policy, family: family)
            let flows = Self.probeFlows(policy, family: family)
            for hook in HookContext.allCases {
                let kernelHook: Hook = hook == .input ? .input : hook == .forward ? .forward : .output
                for s in addrs {
                    for d in addrs {
                        let from = evaluator.classify(IPPrefix(family: family, address: s, length: family.bits), isSource: true, hook: hook)
                        let to = evaluator.classify(IPPrefix(family: family, address: d, length: family.bits), isSource: false, hook: hook)
                        for f in flows {
                            let expected: FlowVerdict = evaluator.decide(from: from, to: to, flow: f.flow).passes ? .allow : .deny
                            let packet = Packet(family: family == .ipv4 ? .ipv4 : .ipv6,
                                                source: Value(s, width: family == .ipv4 ? 4 : 16),
                                                destination: Value(d, width: family == .ipv4 ? 4 : 16),
                                                l4proto: f.packetProto, transportOffset2: f.offset2, icmpType: f.type)
                            let got: FlowVerdict = interpreter.evaluate(packet, hook: kernelHook) == .accept ? .allow : .deny
                            if got != expected && mismatches.count < 10 {
                                mismatches.append("\(hook) \(from)→\(to) proto \(f.packetProto) off2 \(f.offset2) type \(f.type): policy \(expected), rule set \(got)")
                            }
                        }
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
    }

    @Test func bundledPoliciesAgree() throws {
        let result = PolicyLoader.load(directory: GoldenTests.policiesDirectory)
        let policy = try #require(result.policy)
        check(policy)
    }

    @Test(arguments: 1...16 as ClosedRange<UInt64>)
    func generatedPoliciesAgree(seed: UInt64) {
        check(RandomPolicy.make(seed: seed, zones: 5, rules: 8))
    }

    /// Random policies with some zones (or all, through settings) in audit mode: a packet the
    /// policy denies passes in the rule set exactly when the evaluator says it is audited.
    @Test(arguments: 1...4 as ClosedRange<UInt64>)
    func auditedPoliciesAgree(seed: UInt64) {
        var policy = RandomPolicy.make(seed: seed, zones: 5, rules: 8)
        if seed == 4 {
            policy.settings.audit = true
        } else {
            for i in policy.zones.indices where (UInt64(i) + seed) % 3 == 0 { policy.zones[i].audit = true }
        }
        check(policy)
    }

    @Test func conntrackAndNeighbourDiscovery() throws {
        let policy = try #require(PolicyLoader.load(directory: GoldenTests.policiesDirectory).policy)
        let interpreter = Interpreter(ZoneCompiler.compile(policy))
        let web = Value(0xC000_0214, width: 4)        // 192.0.2.20
        let db = Value(0xCB00_7105, width: 4)         // 203.0.113.5
        // New web → db is denied, but a reply of an established flow passes.
        let newFlow = Packet(family: .ipv4, source: web, destination: db, l4proto: 6, transportOffset2: 5432, ctState: 8)
        #expect(interpreter.evaluate(newFlow, hook: .forward) != .accept)
        var established = newFlow
        established.ctState = 2
        #expect(interpreter.evaluate(established, hook: .forward) == .accept)
        // An invalid packet of an otherwise allowed flow is denied.
        let api = Value(0xC633_640A, width: 4)        // 198.51.100.10
        var invalid = Packet(family: .ipv4, source: api, destination: db, l4proto: 6, transportOffset2: 5432, ctState: 1)
        #expect(interpreter.evaluate(invalid, hook: .forward) != .accept)
        invalid.ctState = 8
        #expect(interpreter.evaluate(invalid, hook: .forward) == .accept)
        // Neighbour solicitation between zones that may not talk is still accepted.
        let w6 = Value(UInt128(0x2001_0db8_0010) << 80 | 7, width: 16)
        let d6 = Value(UInt128(0x2001_0db8_0030) << 80 | 5, width: 16)
        let ns = Packet(family: .ipv6, source: w6, destination: d6, l4proto: 58, icmpType: 135)
        #expect(interpreter.evaluate(ns, hook: .forward) == .accept)
        var ping = ns
        ping.icmpType = 128
        #expect(interpreter.evaluate(ping, hook: .forward) != .accept)
    }

    @Test func rejectSettingRejects() throws {
        var policy = RandomPolicy.make(seed: 7)
        policy.settings.denied = .reject
        let t = ZoneCompiler.compile(policy)
        let deny = try #require(t.chain(named: "deny"))
        #expect(deny.rules.contains { $0.expressions.contains(.reject(.tcpReset)) })
        policy.settings.denied = .drop
        policy.settings.logDenied = true
        let deny2 = try #require(ZoneCompiler.compile(policy).chain(named: "deny"))
        #expect(deny2.rules.first?.expressions == [.limit(perSecond: 100, burst: 10), .nflog(group: 100, prefix: "denied")])
        policy.settings.logTo = .kernel
        policy.settings.logRate = 10
        let deny3 = try #require(ZoneCompiler.compile(policy).chain(named: "deny"))
        #expect(deny3.rules.first?.expressions == [.limit(perSecond: 10, burst: 5), .log(prefix: "zonewall denied ")])
        #expect(deny2.rules.last?.expressions == [.verdict(.drop)])
    }
}
