import HostScope
import Ruleset
import TestSupport
import Testing
import ZoneCompiler
import ZonePolicy

func ip(_ s: String) -> IPPrefix { IPPrefix.parse(s)! }

let text = """
    zones:
      web: {members: [198.51.100.0/24]}
      api: {members: [198.51.100.10, "2001:db8:1::/64"]}
      db: {members: [203.0.113.5]}
      admin: {members: [192.0.2.0/28]}
    allow:
      - {from: [web, admin], to: [api, db], ports: [tcp/443]}
      - {from: api, to: db, ports: [tcp/5432]}
      - {from: admin, to: host, ports: [tcp/22]}
      - {from: world, to: web, ports: [tcp/80]}
    """

func policy() throws -> Policy { try #require(PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: text)]).policy) }

struct ScopeFilterTests {
    @Test func localZonesByLongestPrefix() throws {
        // 198.51.100.10 is inside web's /24 but api holds it exactly.
        #expect(ScopeFilter.localZones(try policy(), addresses: [ip("198.51.100.10"), ip("192.0.2.200")]) == ["api"])
    }

    @Test func keepsOnlyPairsWithALocalEnd() throws {
        let scoped = ScopeFilter.restrict(try policy(), toHostWith: [ip("198.51.100.10")])  // this host is api
        let pairs = scoped.rules.map { "\($0.from.map(\.description).joined(separator: ",")) → \($0.to.map(\.description).joined(separator: ","))" }
        #expect(pairs == ["web,admin → api", "api → db", "admin → host"])
        #expect(scoped.zones == (try policy()).zones, "every zone stays, so unnamed zones are still denied")
    }

    /// Identity zones (units, cgroups, users) are this host's processes: their rules stay in a
    /// scoped policy whatever the host's addresses, and so do rules to them. (They were dropped,
    /// so `--scope local` denied every unit zone's traffic.)
    @Test func identityZonesAreLocal() throws {
        let yaml = text + """

              - {from: billing, to: [db, pg], ports: [tcp/5432]}
              - {from: nob, to: web, ports: [tcp/81]}
              - {from: admin, to: billing, ports: [tcp/9000]}
            """
        let withIdentities = yaml.replacingOccurrences(of: "zones:\n", with: """
            zones:
              billing: {units: [billing.service]}
              pg: {cgroups: [/system.slice/postgresql.service]}
              nob: {users: [nobody]}

            """)
        let p = try #require(PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: withIdentities)]).policy)
        #expect(ScopeFilter.localZones(p, addresses: [ip("192.0.2.200")]) == ["billing", "pg", "nob"])
        let scoped = ScopeFilter.restrict(p, toHostWith: [ip("192.0.2.200")])
        let pairs = scoped.rules.map { "\($0.from.map(\.description).joined(separator: ",")) → \($0.to.map(\.description).joined(separator: ","))" }
        #expect(pairs == ["admin → host", "billing → db,pg", "nob → web", "admin → billing"], "\(pairs)")
        let table = ScopeFilter.withoutForward(ZoneCompiler.compile(scoped))
        #expect(table.chain(named: "z_billing") != nil && table.chain(named: "z_nob") != nil)
    }

    @Test func scopedTableHasNoForwardChain() throws {
        let table = ScopeFilter.withoutForward(ZoneCompiler.compile(try policy()))
        #expect(table.chains.compactMap { $0.base?.hook } .sorted { $0.rawValue < $1.rawValue } == [.input, .output])
    }

    /// The scoped policy decides every flow that can reach the input or output hook of the
    /// host exactly as the full policy does, on random policies and random host addresses.
    @Test func agreesWithTheFullPolicyOnTheLocalHooks() throws {
        var g = SplitMix64(seed: 14)
        let flows = [Flow(proto: 6, port: 22), Flow(proto: 6, port: 443), Flow(proto: 6, port: 5432), Flow(proto: 17, port: 53),
                     Flow(proto: 1, icmpType: 8), Flow(proto: 58, icmpType: 128), Flow(proto: 6, port: 80)]
        var checked = 0
        for seed in 0..<150 {
            let full = RandomPolicy.make(&g, seed: UInt64(seed))
            var samples = full.zones.flatMap { $0.members.map { $0.value } }.flatMap { [IPPrefix(family: $0.family, address: $0.first, length: $0.family.bits),
                                                                                            IPPrefix(family: $0.family, address: $0.last, length: $0.family.bits)] }
            samples += [ip("192.0.2.77"), ip("2001:db8:3::99"), ip("203.0.113.200")]
            let host = (0..<Int.random(in: 1...3, using: &g)).map { _ in samples.randomElement(using: &g)! }
            let scoped = ScopeFilter.restrict(full, toHostWith: host)
            let a = Evaluator(full), b = Evaluator(scoped)
            for h in host {
                for other in samples where other.family == h.family {
                    for flow in flows {
                        // input: other → this host; output: this host → other.
                        for (src, dst, hook) in [(other, h, HookContext.input), (h, other, HookContext.output)] {
                            let f1 = a.classify(src, isSource: true, hook: hook), t1 = a.classify(dst, isSource: false, hook: hook)
                            let f2 = b.classify(src, isSource: true, hook: hook), t2 = b.classify(dst, isSource: false, hook: hook)
                            #expect(f1 == f2 && t1 == t2)
                            let d1 = a.decide(from: f1, to: t1, flow: flow).verdict, d2 = b.decide(from: f2, to: t2, flow: flow).verdict
                            if d1 != d2 { Issue.record("seed \(seed): \(src) → \(dst) \(hook) \(flow): full \(d1), scoped \(d2)"); return }
                            checked += 1
                        }
                    }
                }
            }
        }
        #expect(checked > 10_000)
    }
}

/// Small random policies: nested prefixes, both families, world and host ends.
enum RandomPolicy {
    static func make(_ g: inout SplitMix64, seed: UInt64) -> Policy {
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)
        var used = Set<IPPrefix>()
        var zones: [Zone] = []
        for i in 0..<6 {
            var members: [Located<IPPrefix>] = []
            for _ in 0..<Int.random(in: 0...3, using: &g) {
                let p: IPPrefix
                if Bool.random(using: &g) {
                    p = IPPrefix(family: .ipv4, address: 0xC000_0200 | UInt128(UInt8.random(in: 0...255, using: &g)),
                                 length: [24, 26, 28, 32].randomElement(using: &g)!).normalized
                } else {
                    p = IPPrefix(family: .ipv6, address: (0x2001_0db8 << 96) | UInt128(UInt8.random(in: 0...3, using: &g)) << 80 | UInt128(UInt8.random(in: 0...255, using: &g)),
                                 length: [48, 64, 120, 128].randomElement(using: &g)!).normalized
                }
                if used.insert(p).inserted { members.append(Located(p, at: loc)) }
            }
            zones.append(Zone(name: "z\(i)", members: members, location: loc))
        }
        func endpoint() -> Endpoint {
            switch Int.random(in: 0..<8, using: &g) {
            case 0: .world
            case 1: .host
            default: .zone("z\(Int.random(in: 0..<6, using: &g))")
            }
        }
        let specs: [PortSpec] = [.any, .icmpEcho, .wholeProtocol(.udp), .ports(.tcp, 22...22), .ports(.tcp, 443...5432), .ports(.tcp, 80...80)]
        var rules: [AllowRule] = []
        for i in 0..<10 {
            rules.append(AllowRule(from: (0..<Int.random(in: 1...2, using: &g)).map { _ in endpoint() },
                                   to: (0..<Int.random(in: 1...2, using: &g)).map { _ in endpoint() },
                                   ports: (0..<Int.random(in: 1...2, using: &g)).map { _ in specs.randomElement(using: &g)! },
                                   location: SourceLocation(path: "gen.yaml", line: i + 2, column: 5)))
        }
        return Policy(zones: zones, rules: rules)
    }
}
