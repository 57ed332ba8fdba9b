import Ruleset
import TestSupport
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// Interface zones, on every hook, with address zones, audit mode, failsafe ports and invalid
/// packets: the evaluator behind `explain` and the compiled rule set agree on every packet.
struct InterfaceAgreementTests {
    /// A random policy whose zones 0 and 1 are interface zones (1 keeps its addresses, which win).
    static func policy(seed: UInt64) -> Policy {
        var policy = RandomPolicy.make(seed: seed, zones: 5, rules: 10)
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)
        policy.zones[0].members = []
        policy.zones[0].interfaces = [Located("edge*", at: loc)]
        policy.zones[1].interfaces = [Located("wg0", at: loc)]
        if seed % 2 == 0 { policy.settings.failsafe = [.ports(.tcp, 22...22), .ports(.udp, 40...60)] }
        switch seed % 4 {
        case 1: policy.zones[0].audit = true
        case 2: policy.zones[2].audit = true
        case 3: policy.settings.audit = true
        default: break
        }
        return policy
    }

    func check(_ policy: Policy, interfaces: [String] = ["edge1", "wg0", "eth0"]) {
        let interpreter = Interpreter(ZoneCompiler.compile(policy))
        let evaluator = Evaluator(policy)
        var mismatches: [String] = [], probes = 0
        for family in AddressFamily.allCases {
            let addrs = AgreementTests.probeAddresses(policy, family: family)
            let flows = AgreementTests.probeFlows(policy, family: family)
            for hook in HookContext.allCases {
                let kernelHook: Hook = hook == .input ? .input : hook == .forward ? .forward : .output
                let iifs: [String?] = hook == .output ? [nil] : interfaces
                let oifs: [String?] = hook == .input ? [nil] : interfaces
                for s in addrs {
                    for d in addrs {
                        for iif in iifs {
                            for oif in oifs {
                                var from = evaluator.classify(IPPrefix(family: family, address: s, length: family.bits), isSource: true, hook: hook)
                                var to = evaluator.classify(IPPrefix(family: family, address: d, length: family.bits), isSource: false, hook: hook)
                                // An address in no zone: the interface's zone, if any, decides.
                                if from == .world, let i = iif { from = evaluator.endpoint(.interface(i), isSource: true, hook: hook) }
                                if to == .world, let o = oif { to = evaluator.endpoint(.interface(o), isSource: false, hook: hook) }
                                for (n, f) in flows.enumerated() {
                                    // Invalid packets on a few flows: the decision does not depend on the port.
                                    for invalid in n % 6 == 0 ? [false, true] : [false] {
                                        let decision = evaluator.decide(from: from, to: to, flow: f.flow, hook: hook)
                                        let failsafe = decision.verdict == .allow && decision.rule == nil && (from.isZone || to.isZone)
                                        let expected: FlowVerdict = if invalid {
                                            // Invalid packets: only ungoverned ones and failsafe ports pass.
                                            (!from.isZone && !to.isZone) || failsafe ? .allow : .deny
                                        } else {
                                            decision.passes ? .allow : .deny
                                        }
                                        var packet = Packet(family: family == .ipv4 ? .ipv4 : .ipv6,
                                                            source: Value(s, width: family == .ipv4 ? 4 : 16),
                                                            destination: Value(d, width: family == .ipv4 ? 4 : 16),
                                                            l4proto: f.packetProto, transportOffset2: f.offset2, icmpType: f.type,
                                                            ctState: invalid ? 1 : 8)
                                        packet.iifname = iif
                                        packet.oifname = oif
                                        let got: FlowVerdict = interpreter.evaluate(packet, hook: kernelHook) == .accept ? .allow : .deny
                                        probes += 1
                                        if got != expected && mismatches.count < 10 {
                                            mismatches.append("\(hook) \(from)→\(to) iif \(iif ?? "-") oif \(oif ?? "-") proto \(f.packetProto) off2 \(f.offset2) type \(f.type)\(invalid ? " invalid" : ""): policy \(expected), rule set \(got)")
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        #expect(probes > 10_000)
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
    }

    @Test(arguments: 1...4 as ClosedRange<UInt64>)
    func interfaceZonesAgree(seed: UInt64) {
        check(Self.policy(seed: seed))
    }

    /// Patterns inside patterns of other zones (and of their own): the most specific one decides,
    /// in the rule set as in the evaluator, through the layered maps.
    @Test(arguments: [2] as [UInt64])
    func nestedPatternsAgree(seed: UInt64) {
        var policy = Self.policy(seed: seed)
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)
        policy.zones[0].interfaces = ["edge*", "eth*", "edge-b1"].map { Located($0, at: loc) }
        policy.zones[1].interfaces = ["edge-b*", "eth0", "wg0"].map { Located($0, at: loc) }
        policy.zones[3].members = []
        policy.zones[3].interfaces = ["edge-b2*", "eth1*"].map { Located($0, at: loc) }
        // One name for each way of deciding: the innermost pattern, each layer out, none.
        check(policy, interfaces: ["edge-b1", "edge-b25", "edge-b3", "eth10", "eth2"])
    }

    /// Every interface element of the plan is a name or a `PREFIX*` pattern as written, never
    /// an interval of names (nft has no syntax for one: `nft -f` of the plan must load it).
    @Test func interfaceElementsAreThePatternsAsWritten() throws {
        let policy = try #require(PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: nestedInterfacePolicy)]).policy)
        let table = ZoneCompiler.compile(policy)
        let text = NftText.render(table)
        #expect(!text.contains("\"-\""), "an interval of interface names:\n\(text)")
        func elements(_ name: String) throws -> [String] {
            let set = try #require(table.sets.first { $0.name == name }, "\(name)")
            return set.elements.map { e in
                let key = DataType.ifname.format(e.key[0])
                if case .verdict(.jump(let chain))? = e.data { return "\(key) jump \(chain)" }
                return key
            }
        }
        // The most specific layer first; each layer's patterns are disjoint.
        #expect(try elements("ifz_src") == ["\"eth0*\" jump fi_lan", "\"eth1*\" jump fi_lan", "\"eth2\" jump fi_lan",
                                            "\"veth-b1\" jump fi_lan", "\"veth0\" jump fi_partner"])
        #expect(try elements("ifz_src_1") == ["\"veth-b*\" jump fi_partner"])
        #expect(try elements("ifz_src_2") == ["\"veth*\" jump fi_lan"])
        #expect(!table.sets.contains { $0.name == "ifz_src_3" })
        #expect(try elements("ifz_all") == ["\"eth0*\"", "\"eth1*\"", "\"eth2\"", "\"veth*\""])
        #expect(try elements("if_lan") == ["\"eth0*\"", "\"eth1*\"", "\"eth2\"", "\"veth*\""])
    }

    /// The helper's finding, as written: SSH on the failsafe port from an interface zone.
    @Test func failsafeHoldsOnAnInterfaceZone() throws {
        let yaml = """
            zones:
              edge: {interfaces: [eth9]}
              db: {members: [198.51.100.1]}
              web: {members: [192.0.2.0/24], audit: true}
            allow:
              - {from: edge, to: db, ports: [tcp/5432]}
              - {from: db, to: host, ports: [tcp/22]}
            settings: {failsafe: [tcp/22]}

            """
        let policy = try #require(PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)]).policy)
        let vm = Interpreter(ZoneCompiler.compile(policy))
        func v4(_ s: String) -> Value { Value(IPPrefix.parse(s)!.address, width: 4) }
        func tcp(_ src: String, _ dst: String, _ port: UInt16, iif: String?, oif: String?, state: UInt32 = 8) -> Packet {
            var p = Packet(family: .ipv4, source: v4(src), destination: v4(dst), l4proto: 6, transportOffset2: port, ctState: state)
            p.iifname = iif
            p.oifname = oif
            return p
        }
        // SSH to this host on the failsafe port, from an unzoned address arriving on edge's interface.
        #expect(vm.evaluate(tcp("203.0.113.9", "203.0.113.1", 22, iif: "eth9", oif: nil), hook: .input) == .accept)
        // edge → web is denied, but web is in audit mode: it passes.
        #expect(vm.evaluate(tcp("203.0.113.9", "192.0.2.7", 3000, iif: "eth9", oif: "eth1"), hook: .forward) == .accept)
        // An invalid packet of an allowed interface flow is denied.
        #expect(vm.evaluate(tcp("203.0.113.9", "198.51.100.1", 5432, iif: "eth9", oif: "eth1", state: 1), hook: .forward) != .accept)
        #expect(vm.evaluate(tcp("203.0.113.9", "198.51.100.1", 5432, iif: "eth9", oif: "eth1"), hook: .forward) == .accept)
        // db's address on this host: edge → db is allowed on input too, and edge → host's port 23 is not.
        #expect(vm.evaluate(tcp("203.0.113.9", "198.51.100.1", 5432, iif: "eth9", oif: nil), hook: .input) == .accept)
        #expect(vm.evaluate(tcp("203.0.113.9", "203.0.113.1", 23, iif: "eth9", oif: nil), hook: .input) != .accept)
    }
}
