import Ruleset
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// Identity zones compiled and run through the interpreter: the kernel's view of units, users and interfaces.
struct IdentityCompilerTests {
    static let yaml = """
        zones:
          billing: {units: [billing.service]}
          reports: {units: [reports.service]}
          pg: {units: [postgresql.service]}
          ops: {users: ["1001"]}
          db: {members: [203.0.113.5]}
          partner: {interfaces: ["veth-p*"]}
          web: {members: [198.51.100.0/24]}
        allow:
          - {from: billing, to: db, ports: [tcp/5432]}
          - {from: billing, to: pg, ports: [tcp/5432]}
          - {from: web, to: pg, ports: [tcp/5432]}
          - {from: ops, to: world, ports: [tcp/443]}
          - {from: partner, to: web, ports: [tcp/80]}
          - {from: billing, to: host, ports: [tcp/8080]}

        """

    static func policy() throws -> Policy {
        let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)])
        return try #require(r.policy, "\(r.diagnostics)")
    }

    static func facts(billing: UInt64 = 101) -> HostFacts {
        HostFacts(cgroups: [
            "billing": [.init(path: "/system.slice/billing.service", id: billing, level: 2)],
            "reports": [.init(path: "/system.slice/reports.service", id: 102, level: 2)],
            "pg": [.init(path: "/system.slice/postgresql.service", id: 103, level: 2)],
        ], uids: ["ops": [1001]])
    }

    static func v4(_ s: String) -> Value { Value(IPPrefix.parse(s)!.address, width: 4) }

    static func tcp(_ src: String, _ dst: String, _ port: UInt16, cgroups: [UInt64] = [], uid: UInt32? = nil,
                    iif: String? = nil, oif: String? = nil, mark: UInt32 = 0) -> Packet {
        var p = Packet(family: .ipv4, source: v4(src), destination: v4(dst), l4proto: 6, transportOffset2: port)
        p.socketCgroups = cgroups
        p.skuid = uid
        p.iifname = iif
        p.oifname = oif
        p.ctMark = mark
        return p
    }

    static let slice: UInt64 = 50, plainHostProcess: UInt64 = 999

    /// A cgroup change replaces only the host maps, and gives exactly the table a whole
    /// compile gives; a change that needs a new map's rule falls back to the whole compile.
    @Test func hostMapsAloneGiveTheWholeCompile() throws {
        let policy = try Self.policy()
        let before = ZoneCompiler.compile(policy, host: Self.facts())
        var restarted = Self.facts(billing: 555)
        restarted.cgroups["reports"]?.append(.init(path: "/user.slice/reports.service", id: 777, level: 2))
        restarted.uids["ops"] = [1001, 1002]
        let fast = try #require(ZoneCompiler.recompileHostMaps(before, policy: policy, host: restarted))
        #expect(fast == ZoneCompiler.compile(policy, host: restarted))
        #expect(fast != before)
        // A unit found at a level no map has yet: its map and rules are new, so no fast path.
        var deeper = Self.facts()
        deeper.cgroups["pg"] = [.init(path: "/system.slice/pg.slice/postgresql.service", id: 103, level: 3)]
        #expect(ZoneCompiler.recompileHostMaps(before, policy: policy, host: deeper) == nil)
        // Back to the level it had: the fast path again, and the same as a whole compile.
        let deep = ZoneCompiler.compile(policy, host: deeper)
        #expect(ZoneCompiler.recompileHostMaps(deep, policy: policy, host: Self.facts()) == nil)
        #expect(ZoneCompiler.recompileHostMaps(deep, policy: policy, host: deeper) == deep)
    }

    @Test func unitsWithTheSameAddressGetDifferentVerdicts() throws {
        let vm = Interpreter(ZoneCompiler.compile(try Self.policy(), host: Self.facts()))
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: [Self.slice, 101], oif: "eth0"), hook: .output) == .accept)
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: [Self.slice, 102], oif: "eth0"), hook: .output) == .drop)
        // A process in no zone keeps the address rules: host → db is not allowed.
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: [Self.slice, Self.plainHostProcess], oif: "eth0"), hook: .output) == .drop)
        // A descendant cgroup of the unit is the unit.
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: [Self.slice, 101, 7000], oif: "eth0"), hook: .output) == .accept)
    }

    /// A unit resolved deep in the hierarchy (level 12: a user session's app) is matched at its
    /// level, and the compiler's deepest level is the one `check` enforces for `cgroups:` paths.
    @Test func deepCgroupsAreMatchedAtTheirLevel() throws {
        #expect(Selector.maxCgroupLevel == IdentityNames.maxCgroupDepth)
        var facts = Self.facts()
        facts.cgroups["billing"] = [.init(path: "/a/b/c/d/e/f/g/h/i/j/k/billing.service", id: 121, level: 12)]
        let vm = Interpreter(ZoneCompiler.compile(try Self.policy(), host: facts))
        let ancestors: [UInt64] = Array(200..<211)  // levels 1 to 11
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: ancestors + [121], oif: "eth0"), hook: .output) == .accept)
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: ancestors + [122], oif: "eth0"), hook: .output) == .drop)
    }

    @Test func loopbackIsDecidedOnInputWithTheSendersMark() throws {
        let vm = Interpreter(ZoneCompiler.compile(try Self.policy(), host: Self.facts()))
        func loop(from sender: [UInt64], to receiver: [UInt64], port: UInt16) -> Disposition {
            var p = Self.tcp("127.0.0.1", "127.0.0.1", port, cgroups: sender, oif: "lo")
            let out = vm.evaluate(&p, hook: .output)
            guard out == .accept else { return out }
            var q = Self.tcp("127.0.0.1", "127.0.0.1", port, cgroups: receiver, iif: "lo", mark: p.ctMark)
            return vm.evaluate(&q, hook: .input)
        }
        #expect(loop(from: [Self.slice, 101], to: [Self.slice, 103], port: 5432) == .accept)    // billing → pg
        #expect(loop(from: [Self.slice, 102], to: [Self.slice, 103], port: 5432) == .drop)      // reports → pg
        #expect(loop(from: [Self.slice, 101], to: [Self.slice, 103], port: 5433) == .drop)
        #expect(loop(from: [Self.slice, Self.plainHostProcess], to: [Self.slice, 103], port: 5432) == .drop)   // host → pg
        #expect(loop(from: [Self.slice, 101], to: [Self.slice, Self.plainHostProcess], port: 8080) == .accept) // billing → host
        #expect(loop(from: [Self.slice, 102], to: [Self.slice, Self.plainHostProcess], port: 8080) == .drop)   // reports → host
        #expect(loop(from: [Self.slice, Self.plainHostProcess], to: [Self.slice, Self.plainHostProcess], port: 22) == .accept)  // not governed
        // The mark keeps other bits: kube-proxy's 0x4000 survives.
        var p = Self.tcp("127.0.0.1", "127.0.0.1", 5432, cgroups: [Self.slice, 101], oif: "lo", mark: 0x4000)
        #expect(vm.evaluate(&p, hook: .output) == .accept)
        #expect(p.ctMark & 0x4000 == 0x4000 && p.ctMark & 0xff != 0)
    }

    @Test func aUnitListenerAcceptsOnlyItsRulesZones() throws {
        let vm = Interpreter(ZoneCompiler.compile(try Self.policy(), host: Self.facts()))
        #expect(vm.evaluate(Self.tcp("198.51.100.7", "192.0.2.1", 5432, cgroups: [Self.slice, 103], iif: "eth0"), hook: .input) == .accept)
        #expect(vm.evaluate(Self.tcp("192.0.2.77", "192.0.2.1", 5432, cgroups: [Self.slice, 103], iif: "eth0"), hook: .input) == .drop)
        // A plain host listener keeps the host rules: world → host is not governed, web → host has no rule.
        #expect(vm.evaluate(Self.tcp("192.0.2.77", "192.0.2.1", 22, cgroups: [Self.slice, Self.plainHostProcess], iif: "eth0"), hook: .input) == .accept)
        #expect(vm.evaluate(Self.tcp("198.51.100.7", "192.0.2.1", 22, cgroups: [Self.slice, Self.plainHostProcess], iif: "eth0"), hook: .input) == .drop)
    }

    @Test func usersAreSenders() throws {
        let vm = Interpreter(ZoneCompiler.compile(try Self.policy(), host: Self.facts()))
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "192.0.2.99", 443, cgroups: [Self.slice, Self.plainHostProcess], uid: 1001, oif: "eth0"), hook: .output) == .accept)
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "192.0.2.99", 80, cgroups: [Self.slice, Self.plainHostProcess], uid: 1001, oif: "eth0"), hook: .output) == .drop)
        #expect(vm.evaluate(Self.tcp("192.0.2.1", "192.0.2.99", 80, cgroups: [Self.slice, Self.plainHostProcess], uid: 1002, oif: "eth0"), hook: .output) == .accept)
    }

    @Test func interfaceZonesApplyWhenTheAddressIsInNoZone() throws {
        let vm = Interpreter(ZoneCompiler.compile(try Self.policy(), host: Self.facts()))
        #expect(vm.evaluate(Self.tcp("192.0.2.50", "198.51.100.9", 80, iif: "veth-p1", oif: "eth1"), hook: .forward) == .accept)
        #expect(vm.evaluate(Self.tcp("192.0.2.50", "198.51.100.9", 81, iif: "veth-p1", oif: "eth1"), hook: .forward) == .drop)
        #expect(vm.evaluate(Self.tcp("192.0.2.50", "198.51.100.9", 80, iif: "eth9", oif: "eth1"), hook: .forward) == .drop)
        // Partner → world: no rule, and the interface zone makes it governed.
        #expect(vm.evaluate(Self.tcp("192.0.2.50", "192.0.2.60", 80, iif: "veth-p1", oif: "eth1"), hook: .forward) == .drop)
        // The address wins over the interface: a web address arriving on veth-p1 is web.
        #expect(vm.evaluate(Self.tcp("198.51.100.3", "192.0.2.60", 80, iif: "veth-p1", oif: "eth1"), hook: .forward) == .drop)
        #expect(vm.evaluate(Self.tcp("198.51.100.3", "203.0.113.9", 80, iif: "veth-p1", oif: "eth1"), hook: .forward) == .drop)
    }

    @Test func aRestartChangesOnlyElements() throws {
        let policy = try Self.policy()
        let before = ZoneCompiler.compile(policy, host: Self.facts())
        let after = ZoneCompiler.compile(policy, host: Self.facts(billing: 4242))
        #expect(before.chains == after.chains)
        #expect(before.sets.map(\.declaration) == after.sets.map(\.declaration))
        let changed = zip(before.sets, after.sets).filter { $0.elements != $1.elements }.map(\.0.name)
        #expect(changed == ["cg_out_l2", "cg_in_l2"] || Set(changed) == ["cg_out_l2", "cg_in_l2"])
        // Until the unit's cgroup exists, its processes are classified by address (here: host).
        let unresolved = Interpreter(ZoneCompiler.compile(policy, host: HostFacts()))
        #expect(unresolved.evaluate(Self.tcp("192.0.2.1", "203.0.113.5", 5432, cgroups: [Self.slice, 101], oif: "eth0"), hook: .output) == .drop)
    }

    @Test func addressOnlyPoliciesCompileAsBefore() throws {
        let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: "zones:\n  a: {members: [192.0.2.0/24]}\nallow:\n  - {from: a, to: world, ports: [any]}\n")])
        let policy = try #require(r.policy)
        #expect(ZoneCompiler.compile(policy, host: Self.facts()) == ZoneCompiler.compile(policy))
        #expect(!NftText.render(ZoneCompiler.compile(policy)).contains("cgroupv2"))
    }

    @Test func markValuesFitTheField() {
        #expect(IdentityCompiler.deposit(3, into: 0x0000_00ff) == 3)
        #expect(IdentityCompiler.deposit(3, into: 0x00ff_0000) == 0x0003_0000)
        #expect(IdentityCompiler.deposit(5, into: 0x0000_3001) == 0x0000_2001)
    }
}
