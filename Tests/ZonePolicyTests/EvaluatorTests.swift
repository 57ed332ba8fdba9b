import Testing
@testable import ZonePolicy

/// What a policy means for flows: classification and decisions.
@Suite struct EvaluatorTests {
    static func policy(_ yaml: String) throws -> Policy {
        let result = parse(yaml)
        #expect(result.errors.isEmpty, "\(dump(result))")
        return try #require(result.policy)
    }

    static func address(_ text: String) throws -> IPPrefix { try #require(IPPrefix.parse(text)) }

    static let nested = """
        zones:
          outer: {members: [10.0.0.0/8, "2001:db8::/32"]}
          middle: {members: [10.1.0.0/16, "2001:db8:1::/48"]}
          inner: {members: [10.1.2.3, "2001:db8:1::3"]}
          web: {members: [192.0.2.16/28]}
          api: {members: [198.51.100.10]}
        allow:
          - {from: web, to: api, ports: [tcp/443]}
          - {from: web, to: api, ports: [tcp/1-100]}
          - {from: web, to: api, ports: [tcp/101-200]}
          - {from: world, to: web, ports: [tcp/80]}
          - {from: [outer, middle, inner], to: world, ports: [any]}

        """

    @Test func longestPrefixWinsWithNestedPrefixes() throws {
        let classifier = Classifier(try Self.policy(Self.nested))
        func zone(_ text: String) throws -> String? {
            let a = try Self.address(text)
            return classifier.zone(of: a.family, a.address)
        }
        #expect(try zone("10.1.2.3") == "inner")
        #expect(try zone("10.1.2.4") == "middle")
        #expect(try zone("10.1.255.255") == "middle")
        #expect(try zone("10.2.0.1") == "outer")
        #expect(try zone("10.255.255.255") == "outer")
        #expect(try zone("11.0.0.0") == nil)
        #expect(try zone("192.0.2.31") == "web")
        #expect(try zone("192.0.2.32") == nil)
        #expect(try zone("2001:db8:1::3") == "inner")
        #expect(try zone("2001:db8:1::4") == "middle")
        #expect(try zone("2001:db8:2::1") == "outer")
        #expect(try zone("2001:db9::1") == nil)
        // The families do not mix: 10.1.2.3 as a number is not an IPv6 member.
        #expect(classifier.zone(of: .ipv6, 0x0a01_0203) == nil)
    }

    @Test func unmatchedAddressesAreWorldOrHostByHook() throws {
        let evaluator = Evaluator(try Self.policy(Self.nested))
        let outside = try Self.address("203.0.113.9"), web = try Self.address("192.0.2.20")
        for side in [true, false] {
            #expect(evaluator.classify(outside, isSource: side, hook: .forward) == .world)
            #expect(evaluator.classify(web, isSource: side, hook: .input) == .zone("web"))
            #expect(evaluator.classify(web, isSource: side, hook: .output) == .zone("web"))
        }
        #expect(evaluator.classify(outside, isSource: false, hook: .input) == .host, "delivered here")
        #expect(evaluator.classify(outside, isSource: true, hook: .input) == .world)
        #expect(evaluator.classify(outside, isSource: true, hook: .output) == .host, "sent from here")
        #expect(evaluator.classify(outside, isSource: false, hook: .output) == .world)
    }

    @Test func worldAndHostAreNotGoverned() throws {
        let evaluator = Evaluator(try Self.policy(Self.nested))
        let ssh = Flow(proto: 6, port: 22)
        for (from, to) in [(Endpoint.world, Endpoint.host), (.host, .world), (.world, .world)] {
            let d = evaluator.decide(from: from, to: to, flow: ssh)
            #expect(d.verdict == .allow && d.rule == nil, "\(from) → \(to): \(d.reason)")
            #expect(d.reason.contains("does not govern"))
            #expect(evaluator.decide(from: from, to: to, spec: .any).verdict == .allow)
        }
        // An address outside every zone talking to this machine: ungoverned too.
        let d = evaluator.decide(from: .address(try Self.address("203.0.113.9")), to: .endpoint(.host), spec: .ports(.tcp, 22...22))
        #expect(d.verdict == .allow && d.from == .world && d.to == .host)
    }

    @Test func trafficInsideAZoneIsGoverned() throws {
        let denied = Evaluator(try Self.policy(Self.nested))
        let d = denied.decide(from: .zone("web"), to: .zone("web"), flow: Flow(proto: 6, port: 443))
        #expect(d.verdict == .deny, "no web → web rule: \(d.reason)")
        #expect(d.reason.contains("no allow rule covers web → web"))

        let allowed = Evaluator(try Self.policy(Self.nested + "  - {from: web, to: web, ports: [tcp/443]}\n"))
        #expect(allowed.decide(from: .zone("web"), to: .zone("web"), flow: Flow(proto: 6, port: 443)).verdict == .allow)
        #expect(allowed.decide(from: .zone("web"), to: .zone("web"), flow: Flow(proto: 6, port: 444)).verdict == .deny)
        #expect(allowed.decide(from: .zone("web"), to: .zone("web"), flow: Flow(proto: 17, port: 443)).verdict == .deny)
    }

    @Test func portRangeIsCoveredByTwoRulesTogether() throws {
        let evaluator = Evaluator(try Self.policy(Self.nested))
        let both = evaluator.decide(from: .zone("web"), to: .zone("api"), spec: .ports(.tcp, 50...150))
        #expect(both.verdict == .allow, "\(both.reason)")
        #expect(both.rule?.location == ZonePolicy.SourceLocation(path: testPath, line: 9, column: 5), "the first rule that helped")
        #expect(both.reason.contains("several rules together"))

        let wider = evaluator.decide(from: .zone("web"), to: .zone("api"), spec: .ports(.tcp, 50...250))
        #expect(wider.verdict == .deny)
        #expect(wider.reason.contains("admit only part of tcp/50-250"))
        #expect(evaluator.decide(from: .zone("web"), to: .zone("api"), spec: .ports(.udp, 50...150)).verdict == .deny)
        #expect(evaluator.decide(from: .zone("web"), to: .zone("api"), spec: .ports(.tcp, 1...200)).verdict == .allow)
        #expect(evaluator.decide(from: .zone("web"), to: .zone("api"), spec: .wholeProtocol(.tcp)).verdict == .deny)
    }

    @Test func decideNamesTheRuleThatAllowed() throws {
        let evaluator = Evaluator(try Self.policy(Self.nested))
        let d = evaluator.decide(from: .address(try Self.address("192.0.2.20")), to: .address(try Self.address("198.51.100.10")),
                                 spec: .ports(.tcp, 443...443))
        #expect(d.verdict == .allow)
        #expect(d.from == .zone("web") && d.to == .zone("api"))
        let location = ZonePolicy.SourceLocation(path: testPath, line: 8, column: 5)
        #expect(d.rule?.location == location)
        #expect(d.reason == "allowed by the rule at policy.yaml:8:5")

        let flow = evaluator.decide(from: .world, to: .zone("web"), flow: Flow(proto: 6, port: 80))
        #expect(flow.rule?.location == ZonePolicy.SourceLocation(path: testPath, line: 11, column: 5))

        let denied = evaluator.decide(from: .endpoint(.world), to: .endpoint(.zone("api")), spec: .ports(.tcp, 443...443))
        #expect(denied.verdict == .deny && denied.rule == nil)
        #expect(denied.reason.contains("no allow rule covers world → api"))
    }

    @Test func flowsMatchPortSpecs() {
        #expect(PortSpec.icmpEcho.admits(Flow(proto: 1, icmpType: 8)))
        #expect(PortSpec.icmpEcho.admits(Flow(proto: 58, icmpType: 128)))
        #expect(!PortSpec.icmpEcho.admits(Flow(proto: 1, icmpType: 0)))
        #expect(PortSpec.wholeProtocol(.sctp).admits(Flow(proto: 132, port: 9)))
        #expect(PortSpec.ports(.udp, 53...54).admits(Flow(proto: 17, port: 54)))
        #expect(!PortSpec.ports(.udp, 53...54).admits(Flow(proto: 6, port: 53)))
        #expect(!PortSpec.ports(.tcp, 1...65535).admits(Flow(proto: 6)), "no port, no match")
        #expect(PortSpec.any.admits(Flow(proto: 47)))
    }
}
