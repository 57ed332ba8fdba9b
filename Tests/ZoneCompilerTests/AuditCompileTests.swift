import Ruleset
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// How audit mode and the flow log compile.
struct AuditCompileTests {
    static let yaml = """
        zones:
          legacy: {members: [192.0.2.0/24, "2001:db8:1::/64"], audit: true}
          db: {members: [192.0.2.5]}
          web: {members: [198.51.100.0/24]}
        allow:
          - {from: web, to: db, ports: [tcp/5432]}
        settings: {log_denied: true, log_group: 9, log_rate: 50}

        """

    static func policy() throws -> Policy {
        try #require(PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)]).policy)
    }

    @Test func auditSetHoldsTheAuditZonesIntervalsMinusNestedEnforcedZones() throws {
        let t = ZoneCompiler.compile(try Self.policy())
        let text = NftText.replaceScript(t)
        // 192.0.2.5 belongs to db (enforced): the audit set skips it.
        #expect(text.contains("set audit_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 192.0.2.0-192.0.2.4,\n\t\t\t     192.0.2.6-192.0.2.255 }"), "\(text)")
        #expect(text.contains("set audit_v6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = { 2001:db8:1::/64 }"), "\(text)")
        let audit = try #require(t.chain(named: "audit"))
        #expect(audit.rules.map(\.expressions) == [[.limit(perSecond: 50, burst: 5), .nflog(group: 9, prefix: "audit")], [.verdict(.accept)]])
        let deny = try #require(t.chain(named: "deny"))
        #expect(deny.rules.first?.expressions == [.limit(perSecond: 50, burst: 5), .nflog(group: 9, prefix: "denied")])
        #expect(NftText.render(Rule([.nflog(group: 9, prefix: "audit")])) == "log prefix \"audit\" group 9")
    }

    @Test func theDenyTailConsultsTheAuditSetsJustBeforeDeny() throws {
        let t = ZoneCompiler.compile(try Self.policy())
        for hook in ["input", "forward", "output"] {
            let rules = try #require(t.chain(named: hook)).rules.map(\.expressions)
            // The ct state fast path is the first rule, as before.
            #expect(rules.first == [.match(.ctState, .anyBit(of: Value(0x6, width: 4))), .verdict(.accept)])
            #expect(Array(rules.suffix(5)) == [
                [.lookup([.ipSaddr], set: "audit_v4", negated: false), .verdict(.goto("audit"))],
                [.lookup([.ipDaddr], set: "audit_v4", negated: false), .verdict(.goto("audit"))],
                [.lookup([.ip6Saddr], set: "audit_v6", negated: false), .verdict(.goto("audit"))],
                [.lookup([.ip6Daddr], set: "audit_v6", negated: false), .verdict(.goto("audit"))],
                [.verdict(.goto("deny"))],
            ])
        }
    }

    @Test func togglingAuditIsAnElementChange() throws {
        let policy = try Self.policy()
        var enforced = policy
        for i in enforced.zones.indices { enforced.zones[i].audit = false }
        var all = policy
        all.settings.audit = true
        let a = ZoneCompiler.compile(policy), b = ZoneCompiler.compile(enforced), c = ZoneCompiler.compile(all)
        for (x, y) in [(a, b), (b, a), (a, c), (b, c)] {
            let tx = Transaction.diff(from: x, to: y)
            #expect(!tx.replacesTable)
            #expect(!tx.isEmpty)
            #expect(tx.changes.allSatisfy { if case .addElements = $0 { true } else if case .deleteElements = $0 { true } else { false } },
                    "\(tx.changes)")
        }
        #expect(b.chains == a.chains)
    }

    @Test func kernelLogStaysAnOption() throws {
        var policy = try Self.policy()
        policy.settings.logTo = .kernel
        let t = ZoneCompiler.compile(policy)
        #expect(t.chain(named: "audit")?.rules.first?.expressions.last == .log(prefix: "zonewall audit "))
        #expect(t.chain(named: "deny")?.rules.first?.expressions.last == .log(prefix: "zonewall denied "))
    }
}
