import Foundation
import Testing
import ZonePolicy
@testable import FlowLog

/// `zonewall suggest`: least rules, never wider than what was seen, and the round trip.
struct SuggesterTests {
    static let base = """
        zones:
          legacy: {members: [192.0.2.0/24], audit: true}
          db: {members: [203.0.113.5]}
          web: {members: [198.51.100.0/24]}
          api: {members: [198.51.100.200]}
        allow:
          - {from: web, to: db, ports: [tcp/5432]}

        """

    static func policy(_ files: [(String, String)]) throws -> Policy {
        let r = PolicyLoader.parse(files.map { PolicyFile(path: $0.0, contents: $0.1) })
        #expect(r.errors.isEmpty, "\(r.diagnostics)")
        return try #require(r.policy)
    }

    /// A failsafe port is open to this host whatever the zones: a denied packet to it (logged
    /// under an older policy) is already allowed, and suggests nothing.
    @Test func failsafePortsAreAlreadyAllowed() throws {
        let policy = try Self.policy([("p.yaml", Self.base + "settings: {failsafe: [tcp/22]}\n")])
        let a = FlowAggregator(policy: policy)
        let packet = LoggedPacket(time: Date(), verdict: .denied, hook: .input, src: IPPrefix.parse("198.51.100.4")!,
                                  dst: IPPrefix.parse("203.0.113.99")!, proto: 6, port: 22)
        let other = LoggedPacket(time: Date(), verdict: .denied, hook: .input, src: IPPrefix.parse("198.51.100.4")!,
                                 dst: IPPrefix.parse("203.0.113.99")!, proto: 6, port: 23)
        let (rules, _) = Suggester(policy: policy).suggest([a.classify(packet, count: 1), a.classify(other, count: 1)])
        #expect(rules.map { "\($0.from) → \($0.to) \($0.ports)" } == ["[\"web\"] → host [tcp/23]"], "\(rules)")
    }

    static func records(_ policy: Policy) -> [FlowRecord] {
        let a = FlowAggregator(policy: policy)
        func r(_ s: String, _ d: String, _ proto: UInt8, _ port: UInt16?, count: Int = 1, verdict: LogVerdict = .audit) -> FlowRecord {
            a.classify(LoggedPacket(time: Date(), verdict: verdict, hook: .forward, src: IPPrefix.parse(s)!, dst: IPPrefix.parse(d)!,
                                    proto: proto, port: port), count: count)
        }
        return [
            r("192.0.2.7", "203.0.113.5", 6, 5432, count: 3),        // legacy → db
            r("192.0.2.8", "203.0.113.5", 6, 8000, count: 2),
            r("192.0.2.8", "203.0.113.5", 6, 8001),
            r("192.0.2.8", "203.0.113.5", 6, 8002),
            r("192.0.2.8", "203.0.113.5", 6, 8004),                   // not contiguous with 8002
            r("192.0.2.8", "203.0.113.5", 17, 53, count: 4),
            r("192.0.2.8", "203.0.113.5", 1, 8),                      // ping
            r("192.0.2.8", "203.0.113.5", 1, 13),                     // timestamp: no port spec for it
            r("192.0.2.8", "203.0.113.5", 47, nil),                   // GRE: only `any`
            r("198.51.100.4", "203.0.113.5", 6, 5432, count: 9, verdict: .denied),  // already allowed
            r("198.51.100.200", "192.0.2.1", 6, 22, count: 2),        // api → legacy
            r("10.1.2.3", "192.0.2.1", 6, 443, count: 5),             // world → legacy
        ]
    }

    @Test func suggestsTheLeastRulesWithMergedContiguousPorts() throws {
        let policy = try Self.policy([("zones.yaml", Self.base)])
        let (rules, skipped) = Suggester(policy: policy).suggest(Self.records(policy))
        #expect(rules.count == 2)
        let legacyDB = try #require(rules.first { $0.from == ["legacy"] && $0.to == "db" })
        #expect(legacyDB.ports.map(\.description) == ["icmp", "tcp/5432", "tcp/8000-8002", "tcp/8004", "udp/53"])
        #expect(legacyDB.packetsPerSpec == [1, 3, 4, 1, 4])
        #expect(legacyDB.packets == 13)
        #expect(rules.contains { $0.from == ["api"] && $0.to == "legacy" && $0.ports.map(\.description) == ["tcp/22"] })
        // Never suggested: the allowed flow, the world, and what no port spec names exactly.
        #expect(!rules.contains { $0.from.contains("web") || $0.from.contains("world") || $0.to == "world" })
        #expect(!rules.flatMap(\.ports).contains(.any))
        #expect(skipped.contains { $0.from == "world" && $0.packets == 5 })
        #expect(skipped.contains { $0.what == "gre" })
        #expect(skipped.contains { $0.what == "icmp type 13" })
        let withWorld = Suggester(policy: policy, includeWorld: true).suggest(Self.records(policy)).rules
        #expect(withWorld.contains { $0.from == ["world"] && $0.to == "legacy" && $0.ports == [.ports(.tcp, 443...443)] })
    }

    @Test func roundTripAdmitsWhatWasSeenAndNothingNext() throws {
        let policy = try Self.policy([("zones.yaml", Self.base)])
        let records = Self.records(policy)
        let (rules, skipped) = Suggester(policy: policy).suggest(records)
        let yaml = Suggester.yaml(rules, skipped: skipped, source: "flows.jsonl")
        // Enforce: take the zone out of audit mode, drop the suggestion into the directory.
        let enforced = Self.base.replacingOccurrences(of: ", audit: true", with: "")
        let after = try Self.policy([("zones.yaml", enforced), ("suggested.yaml", yaml)])
        #expect(after.rules.count == 1 + rules.count)
        #expect(after.rules.contains { $0.description?.contains("observed packet") == true })
        let e = Evaluator(after)
        let a = FlowAggregator(policy: after)
        for r in records where !(r.from == "world" || r.to == "world") {
            let c = a.classify(r.packet)
            let d = e.decide(from: .zone(c.from), to: .zone(c.to), flow: r.packet.flow)
            let expressible = [6, 17].contains(r.packet.proto) || r.packet.flow.isEchoRequest
            #expect(d.verdict == (expressible ? .allow : .deny), "\(c.from) → \(c.to) \(r.packet.proto)/\(r.packet.port ?? 0)")
        }
        // Unobserved neighbours stay denied.
        for port: UInt16 in [5431, 5433, 7999, 8003, 8005] {
            #expect(e.decide(from: .zone("legacy"), to: .zone("db"), flow: Flow(proto: 6, port: port)).verdict == .deny, "tcp/\(port)")
        }
        #expect(e.decide(from: .zone("legacy"), to: .zone("db"), flow: Flow(proto: 17, port: 54)).verdict == .deny)
        #expect(e.decide(from: .world, to: .zone("legacy"), flow: Flow(proto: 6, port: 443)).verdict == .deny)
    }

    /// Zone names YAML would read as booleans or null (`no`, `null`, `true`, `y`, `off`) are
    /// quoted, so the suggestion loads and admits what was seen.
    @Test func zoneNamesYAMLReadsAsNonStringsAreQuotedAndRoundTrip() throws {
        let zones = """
            zones:
              "no": {members: [192.0.2.0/24], audit: true}
              "null": {members: [203.0.113.5]}
              "true": {members: [198.51.100.200]}
              "y": {members: [198.51.100.7]}
              "off": {members: [198.51.100.8]}

            """
        let policy = try Self.policy([("zones.yaml", zones)])
        let a = FlowAggregator(policy: policy)
        func r(_ s: String, _ d: String, _ proto: UInt8, _ port: UInt16) -> FlowRecord {
            a.classify(LoggedPacket(time: Date(), verdict: .denied, hook: .forward, src: IPPrefix.parse(s)!, dst: IPPrefix.parse(d)!,
                                    proto: proto, port: port))
        }
        let records = [r("192.0.2.7", "203.0.113.5", 6, 5432), r("198.51.100.200", "203.0.113.5", 6, 5432),
                       r("198.51.100.7", "198.51.100.8", 1, 8), r("203.0.113.5", "192.0.2.9", 17, 53)]
        let (rules, skipped) = Suggester(policy: policy).suggest(records)
        #expect(rules.count == 3)
        let yaml = Suggester.yaml(rules, skipped: skipped, source: "flows.jsonl")
        #expect(yaml.contains("  - from: [\"no\", \"true\"]\n    to: \"null\"\n"), "\(yaml)")
        let after = try Self.policy([("zones.yaml", zones), ("suggested.yaml", yaml)])
        let e = Evaluator(after)
        for rec in records {
            #expect(e.enforcedDecision(from: .zone(rec.from), to: .zone(rec.to), flow: rec.packet.flow).verdict == .allow, "\(rec.from) → \(rec.to)")
        }
    }

    /// Any string written with `scalar` reads back as that string, in flow context too.
    @Test func scalarsReadBackAsTheSameString() throws {
        let names = ["web", "db-1", "a_b", "no", "No", "NULL", "true", "y", "n", "on", "off", "yes", "~", "1", "0x1f", "1e3", ".inf",
                     "a: b", "#x", "a #b", "", " lead", "trail ", "x\"y", "back\\slash", "[list]", "{map}", "a,b", "*alias",
                     "&anchor", "!tag", "|", ">", "-", "? q", "@at", "`tick", "%pct", "new\nline", "tab\there", "\u{85}", "ünï"]
        for name in names {
            let s = Suggester.scalar(name)
            let yaml = "zones:\n  a: {members: [192.0.2.1]}\nallow:\n  - {from: a, to: a, ports: [tcp/1], description: \(s)}\n"
            let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)])
            #expect(r.policy?.rules.first?.description == name, "\(name.debugDescription) written \(s): \(r.diagnostics)")
        }
        #expect(Suggester.scalar("web") == "web" && Suggester.scalar("no") == "\"no\"")
    }

    @Test func runsMergeOnlyContiguousPorts() {
        #expect(Suggester.runs([5, 3, 4, 9, 65535, 65534, 1]) == [1...1, 3...5, 9...9, 65534...65535])
        #expect(Suggester.runs([]) == [])
    }

    /// A packet shows addresses only: where a unit, cgroup, user or interface zone may hold the
    /// end that looks like host or world, no rule is suggested for host or world, and the hint
    /// says why. Without identity zones the same packet gets its host rule.
    @Test func identityZonesMakeHostAndWorldEndsAmbiguous() throws {
        func packet(_ hook: LogHook, _ s: String, _ d: String, _ port: UInt16) -> LoggedPacket {
            LoggedPacket(time: Date(), verdict: .denied, hook: hook, src: IPPrefix.parse(s)!, dst: IPPrefix.parse(d)!, proto: 6, port: port)
        }
        let plain = try Self.policy([("p.yaml", """
            zones:
              db: {members: [203.0.113.30]}
            allow:
              - {from: host, to: db, ports: [tcp/5432]}

            """)])
        let out = packet(.output, "192.0.2.1", "203.0.113.30", 5433)
        let plainRules = Suggester(policy: plain).suggest([FlowAggregator(policy: plain).classify(out)]).rules
        #expect(plainRules.map { "\($0.from) \($0.to) \($0.ports)" } == ["[\"host\"] db [tcp/5433]"])

        let identities = try Self.policy([("p.yaml", """
            zones:
              billing: {units: [billing.service]}
              edge: {interfaces: ["eth9"]}
              db: {members: [203.0.113.30]}
            allow:
              - {from: billing, to: db, ports: [tcp/5432]}
              - {from: edge, to: db, ports: [tcp/5432]}

            """)])
        let a = FlowAggregator(policy: identities)
        let suggester = Suggester(policy: identities, includeWorld: true)
        let (rules, skipped) = suggester.suggest([
            a.classify(out),                                                      // host? → db
            a.classify(packet(.forward, "198.51.100.9", "203.0.113.30", 5433)),   // world? (eth9) → db
            a.classify(packet(.input, "203.0.113.30", "192.0.2.1", 8080)),        // db → host? (a unit's listener)
        ])
        #expect(rules.isEmpty)
        #expect(skipped.count == 3)
        // A local address in an address zone is no different: the socket's cgroup is looked at first.
        let zonedLocal = suggester.suggest([a.classify(packet(.output, "203.0.113.30", "198.51.100.9", 443))])
        #expect(zonedLocal.rules.isEmpty && zonedLocal.skipped.first?.reason.contains("the sender may be a process of zone(s) billing") == true)
        #expect(skipped.contains { $0.from == "host" && $0.reason.contains("the sender may be a process of zone(s) billing") })
        #expect(skipped.contains { $0.from == "world" && $0.reason.contains("the sender may be in interface zone(s) edge") })
        #expect(skipped.contains { $0.to == "host" && $0.reason.contains("the receiver may be a process of zone(s) billing") })
    }
}
