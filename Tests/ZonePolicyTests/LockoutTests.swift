import Testing
import ZonePolicy

/// The lock-out lint warns when SSH to this host is governed and no zone an operator can be in
/// is let in; choosing which zones may (least privilege) is not a lock-out.
struct LockoutTests {
    static func warnings(_ yaml: String) throws -> [String] {
        let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)])
        let policy = try #require(r.policy, "\(r.diagnostics)")
        return Lockout.warnings(policy).map(\.description)
    }

    @Test func noZoneLetInWarnsNamingThemAll() throws {
        let w = try Self.warnings("""
            zones:
              a: {members: [192.0.2.1]}
              b: {members: [192.0.2.2]}
              c: {members: [192.0.2.3]}
              d: {members: [192.0.2.4]}
              empty:
              watched: {members: [192.0.2.5], audit: true}
            allow:
              - {from: a, to: b, ports: [tcp/80]}

            """)
        #expect(w.count == 1)
        let text = try #require(w.first)
        #expect(text.contains("denied from zone(s) a, b, c, d:"))
        // Zones no operator can be in (no members), or whose denied traffic passes (audit), are not named.
        #expect(!text.contains("empty") && !text.contains("watched"))
        #expect(text.contains("from: [a, b, c, d]"), "the hint names every zone it warns about")
    }

    /// A zone no operator connects from is silenced on the zone, and leaves the list; with every
    /// zone silenced there is no warning. The warning stands at the zone written first.
    /// Units, cgroups and users are this host's processes: no operator connects from them, so
    /// they are never named, and a policy of identity zones alone gets no warning.
    @Test func identityZonesAreNoOperatorsSource() throws {
        let w = try Self.warnings("""
            zones:
              a: {members: [192.0.2.1]}
              billing: {units: [billing.service]}
              pg: {cgroups: [/system.slice/postgresql.service]}
              ops: {users: [nobody]}
            allow:
              - {from: billing, to: a, ports: [tcp/80]}

            """)
        #expect(w.count == 1)
        #expect(w.first?.contains("denied from zone(s) a:") == true, "\(w)")
        #expect(try Self.warnings("zones:\n  billing: {units: [billing.service]}\nallow:\n  - {from: billing, to: world, ports: [tcp/443]}\n").isEmpty)
    }

    @Test func silencedOnTheZonesNoOperatorConnectsFrom() throws {
        let yaml = """
            zones:
              web: {members: [192.0.2.1]}
              api: {members: [192.0.2.2]%@}
            allow:
              - {from: web, to: api, ports: [tcp/80]}

            """
        let both = try Self.warnings(yaml.replacingOccurrences(of: "%@", with: ""))
        #expect(both.count == 1 && both[0].hasPrefix("p.yaml:2:3: warning: tcp/22 to this host is denied from zone(s) api, web:"), "\(both)")
        #expect(both[0].contains("lint: {ignore: [lockout]"))
        let one = try Self.warnings(yaml.replacingOccurrences(of: "%@", with: ", lint: {ignore: [lockout], reason: \"no operators\"}"))
        #expect(one.count == 1 && one[0].contains("denied from zone(s) web:"), "\(one)")
        let none = try Self.warnings(yaml.replacingOccurrences(of: "%@", with: ", lint: {ignore: [lockout], reason: \"no operators\"}")
            .replacingOccurrences(of: "[192.0.2.1]}", with: "[192.0.2.1], lint: {ignore: [lockout], reason: \"console only\"}}"))
        #expect(none.isEmpty, "\(none)")
    }

    @Test func oneZoneLetInIsAChoiceNotALockout() throws {
        #expect(try Self.warnings("""
            zones:
              admin: {members: [198.51.100.200]}
              guest: {members: [192.0.2.0/24]}
            allow:
              - {from: admin, to: host, ports: [tcp/22]}
              - {from: guest, to: world, ports: [tcp/443]}

            """).isEmpty)
    }

    @Test func aFailsafePortIsNoLockout() throws {
        #expect(try Self.warnings("""
            zones:
              guest: {members: [192.0.2.0/24]}
            allow:
              - {from: guest, to: world, ports: [tcp/443]}
            settings: {failsafe: [tcp/22]}

            """).isEmpty)
    }
}

/// A rule whose ends are all ungoverned (world, host) changes nothing, and check says so.
struct UngovernedRuleTests {
    @Test func aRuleBetweenWorldAndHostIsReportedAsWithoutEffect() throws {
        let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: """
            zones:
              web: {members: [192.0.2.0/28]}
            allow:
              - {from: world, to: host, ports: [tcp/22]}
              - {from: [world, web], to: host, ports: [tcp/80]}

            """)], warnings: true)
        let lines = r.diagnostics.map(\.description)
        #expect(lines.contains { $0.hasPrefix("p.yaml:4:") && $0.contains("this allow rule has no effect") })
        #expect(!lines.contains { $0.hasPrefix("p.yaml:5:") && $0.contains("no effect") }, "web → host is governed")
        #expect(r.policy != nil, "a warning, not an error")
    }
}
