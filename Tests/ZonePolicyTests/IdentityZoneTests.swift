import Testing
@testable import ZonePolicy

/// Zones of units, cgroups, users and interfaces: the language, its diagnostics and its meaning.
@Suite struct IdentityZoneTests {
    static let services = """
        zones:
          billing:
            units: [billing.service, "billing-worker@*.service"]
            cgroups: [/machine.slice/libpod-3f2a.scope/]
            users: [billing, 1001]
            interfaces: [wg-partner, "veth-b*"]
            members: [198.51.100.20]
          pg:
            units: [postgresql.service]
          ops:
            users: [ops]
          partner:
            interfaces: ["veth*"]
          db:
            members: [203.0.113.5]
        allow:
          - {from: billing, to: db, ports: [tcp/5432]}
          - {from: billing, to: pg, ports: [tcp/5432]}
          - {from: ops, to: world, ports: [tcp/443]}
          - {from: partner, to: billing, ports: [tcp/443]}
          - {from: host, to: ops, ports: [tcp/22]}

        """

    @Test func parsesEveryKind() throws {
        let result = parse(Self.services)
        #expect(result.errors.isEmpty, "\(dump(result))")
        let policy = try #require(result.policy)
        let billing = try #require(policy.zone(named: "billing"))
        #expect(billing.units.map(\.value) == ["billing.service", "billing-worker@*.service"])
        #expect(billing.cgroups.map(\.value) == ["/machine.slice/libpod-3f2a.scope"])
        #expect(billing.users.map(\.value) == ["billing", "1001"])
        #expect(billing.interfaces.map(\.value) == ["wg-partner", "veth-b*"])
        #expect(billing.units[1].location == ZonePolicy.SourceLocation(path: testPath, line: 3, column: 30))
        #expect(billing.isLocal && !billing.isUsersOnly)
        #expect(try #require(policy.zone(named: "ops")).isUsersOnly)
        // The users-only zone as a destination is warned about, at the rule's `to`.
        expectDiagnostic(result, .warning, line: 21, column: 22, message: "zone 'ops' has only users, and a user is only a sender")
    }

    @Test(arguments: [
        ("units: [billing]", "has no type suffix"),
        ("units: [billing.timer]", "'.timer' is not a unit type that has a cgroup"),
        ("units: [\"bill ing.service\"]", "' ' is not allowed"),
        ("units: [\"billing-[ab.service\"]", "unbalanced '['"),
        ("units: [\"*\"]", "matches every cgroup"),
        ("cgroups: [machine.slice/x.scope]", "is not absolute"),
        ("cgroups: [/a/../b]", "'.' or '..'"),
        ("cgroups: [/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17]", "is 17 levels deep; zonewall matches cgroups up to level 16"),
        ("interfaces: [a-very-long-interface-name]", "longer than 15 bytes"),
        ("interfaces: [\"veth*x\"]", "'*' is only allowed at the end"),
        ("users: [\"-x\"]", "is not a user name or uid"),
    ])
    func malformedIdentities(item: String, message: String) {
        let result = parse("zones:\n  z:\n    \(item)\n")
        expectOnlyError(result, line: 3, column: item.firstIndex(of: "[")!.utf16Offset(in: item) + 6, message: message)
    }

    @Test func cgroupPathOfSixteenLevelsIsFine() {
        expectLoads(parse("zones:\n  z:\n    cgroups: [/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16]\nallow:\n  - {from: z, to: world, ports: [any]}\n"))
    }

    @Test func interfaceOfExactlyFifteenBytesIsFine() {
        expectLoads(parse("zones:\n  z:\n    interfaces: [abcdefghijklmno, \"abcdefghijklmno*\"]\nallow:\n  - {from: z, to: world, ports: [any]}\n"))
    }

    @Test(arguments: [("units", "billing.service", "unit", "x.service"), ("cgroups", "/a/b", "cgroup", "/x"),
                      ("users", "billing", "user", "x"), ("interfaces", "eth1", "interface", "x")])
    func sameIdentityInTwoZonesNamesBothPlaces(key: String, value: String, kind: String, other: String) {
        let line = "    \(key): [\(other), \(value)]"
        let result = parse("zones:\n  a:\n    \(key): [\(value)]\n  b:\n\(line)\n")
        let column = line.count - value.count  // 1-based column of the value before the closing ']'
        let d = expectOnlyError(result, line: 5, column: column, message: "\(kind) '\(value)' is in two zones, 'a' and 'b'")
        #expect(d?.hint?.contains("policy.yaml:3:\(key.count + 8)") == true, "hint names the first place: \(d?.hint ?? "nil")")
        #expect(d?.hint?.hasSuffix("; \(kind == "interface" ? "an" : "a") \(kind) belongs to one zone") == true, "\(d?.hint ?? "nil")")
    }

    @Test func expectationsAcceptIdentities() throws {
        let result = parse(Self.services + """
            expect:
              - {from: unit:billing.service, to: db, port: tcp/5432, verdict: allow}
              - {from: unit:other.service, to: db, port: tcp/5432, verdict: deny}
              - {from: "cgroup:/machine.slice/libpod-3f2a.scope/inner", to: unit:postgresql.service, port: tcp/5432, verdict: allow}
              - {from: user:ops, to: 192.0.2.1, port: tcp/443, verdict: allow}
              - {from: iface:veth7, to: 198.51.100.20, port: tcp/443, verdict: allow}
              - {from: unit:bad, to: db, port: tcp/1, verdict: deny}

            """)
        expectOnlyError(result, line: 28, column: 12, message: "has no type suffix")
        let fixed = parse(Self.services + """
            expect:
              - {from: unit:billing.service, to: db, port: tcp/5432, verdict: allow}
              - {from: "cgroup:/machine.slice//libpod-3f2a.scope/inner", to: unit:postgresql.service, port: tcp/5432, verdict: allow}

            """)
        let policy = try #require(fixed.policy, "\(dump(fixed))")
        #expect(policy.expectations.map(\.from) == [.unit("billing.service"), .cgroup("/machine.slice/libpod-3f2a.scope/inner")])
    }

    /// A user is only a sender (`explain` refuses one as TO too): an expectation towards one
    /// is an error at it, and the other end of the same expectation is still checked.
    @Test func expectationTowardsAUserIsAnError() {
        let result = parse(Self.services + """
            expect:
              - {from: db, to: user:ops, port: tcp/80, verdict: deny}
              - {from: unit:bad, to: user:root, port: tcp/80, verdict: deny}

            """)
        #expect(result.policy == nil)
        let errors = result.diagnostics.filter { $0.severity == .error }
        #expect(errors.map(\.location.line) == [23, 24, 24], "\(dump(result))")
        #expect(errors.filter { $0.message == "'user:ops': a user is only a sender" }.map(\.location.column) == [20], "\(dump(result))")
        #expect(errors.contains { $0.message.contains("has no type suffix") }, "\(dump(result))")
        #expect(errors.contains { $0.message == "'user:root': a user is only a sender" }, "\(dump(result))")
    }

    @Test func markFieldTooSmallIsAnError() {
        let result = parse("""
            settings:
              ct_mark_bits: "0x3"
            zones:
              a: {units: [a.service]}
              b: {units: [b.service]}
              c: {users: [c]}
              d: {units: [d.service]}

            """)
        expectOnlyError(result, line: 2, column: 17, message: "ct_mark_bits 0x3 holds 3 local zones, but the policy has 4")
        expectOnlyError(parse("settings:\n  ct_mark_bits: \"0x0\"\n"), line: 2, column: 17, message: "non-zero 32-bit mask")
        // Hexadecimal only: 0100 is not 0x100, nor 100 or 64; no underscores, signs or decimals.
        for text in ["0100", "255", "1_0", "+255", "0x1_0", "0x", "0x123456789", "!!str 255"] {
            expectOnlyError(parse("settings:\n  ct_mark_bits: \(text)\n"), line: 2, column: 17, message: "in hexadecimal")
        }
        #expect(parse("settings:\n  ct_mark_bits: 0x100\n").policy?.settings.ctMarkBits == 0x100)
        #expect(Settings().ctMarkBits & (0x4000 | 0x8000 | 0xffff_0000 | 0x0f00) == 0)
    }

    // MARK: meaning

    static func evaluator() throws -> Evaluator { Evaluator(try #require(parse(Self.services).policy)) }

    @Test func unitsAndCgroupsClassifyDeepestFirst() throws {
        let e = try Self.evaluator()
        #expect(e.identities.zone(ofUnit: "billing.service") == "billing")
        #expect(e.identities.zone(ofUnit: "billing-worker@7.service") == "billing")
        #expect(e.identities.zone(ofUnit: "billing-worker.service") == nil)
        #expect(e.identities.zone(ofCgroup: "/system.slice/postgresql.service") == "pg")
        // A descendant cgroup belongs to its unit: processes of a unit live in sub-cgroups too.
        #expect(e.identities.zone(ofCgroup: "/system.slice/postgresql.service/workers/w1") == "pg")
        #expect(e.identities.zone(ofCgroup: "/user.slice/user-1000.slice/user@1000.service/app.slice/billing.service") == "billing")
        #expect(e.identities.zone(ofCgroup: "/machine.slice/libpod-3f2a.scope/x") == "billing")
        // The deepest wins: a unit inside another zone's cgroup.
        #expect(e.identities.zone(ofCgroup: "/machine.slice/libpod-3f2a.scope/postgresql.service") == "pg")
        #expect(e.identities.zone(ofCgroup: "/system.slice/other.service") == nil)
    }

    @Test func decisionsFollowTheIssuesOrder() throws {
        let e = try Self.evaluator()
        func verdict(_ from: Party, _ to: Party, _ spec: String) throws -> Decision {
            e.decide(from: from, to: to, spec: try PortSpec.parse(spec).get())
        }
        let db = Party.address(try #require(IPPrefix.parse("203.0.113.5")))
        // Two units with the same address: only the billing one may reach the db.
        #expect(try verdict(.unit("billing.service"), db, "tcp/5432").verdict == .allow)
        let other = try verdict(.unit("other.service"), db, "tcp/5432")
        #expect(other.verdict == .deny && other.from == .host && other.to == .zone("db"))
        // Local to local: unit → unit by a rule, host → unit denied without one.
        let loop = try verdict(.cgroup("/system.slice/billing.service"), .unit("postgresql.service"), "tcp/5432")
        #expect(loop.verdict == .allow && loop.from == .zone("billing") && loop.to == .zone("pg"))
        #expect(try verdict(.endpoint(.host), .unit("postgresql.service"), "tcp/5432").verdict == .deny)
        #expect(try verdict(.unit("other.service"), .unit("postgresql.service"), "tcp/5432").verdict == .deny)
        // Users: senders only.
        #expect(try verdict(.user("ops"), .address(try #require(IPPrefix.parse("192.0.2.1"))), "tcp/443").verdict == .allow)
        #expect(try verdict(.user("ops"), .address(try #require(IPPrefix.parse("192.0.2.1"))), "tcp/80").verdict == .deny)
        let toUser = try verdict(.endpoint(.host), .user("ops"), "tcp/22")
        #expect(toUser.to == .host, "a user never classifies a receiver")
        // Interfaces: the longest wildcard decides; the address wins over the interface.
        #expect(e.identities.zone(ofInterface: "veth-b1") == "billing")
        #expect(e.identities.zone(ofInterface: "veth9") == "partner")
        #expect(e.identities.zone(ofInterface: "eth0") == nil)
        let viaIface = try verdict(.interface("veth9"), .address(try #require(IPPrefix.parse("198.51.100.20"))), "tcp/443")
        #expect(viaIface.verdict == .allow && viaIface.from == .zone("partner") && viaIface.to == .zone("billing"))
        #expect(try verdict(.interface("eth0"), .address(try #require(IPPrefix.parse("198.51.100.20"))), "tcp/443").from == .world)
    }

    /// `root` in one zone and `0` in another are one user where root is uid 0: the kernel sees
    /// uids, so one of the zones would never see root's packets, and explain would answer for it.
    @Test func oneUserUnderTwoSpellingsInTwoZonesIsAnError() throws {
        let yaml = """
            zones:
              ops: {users: [root]}
              apps: {users: ["0"]}
              db: {members: [203.0.113.5]}
            allow:
              - {from: ops, to: db, ports: [tcp/5432]}

            """
        let lookup: UserLookup = { $0 == "root" ? 0 : nil }
        let files = [PolicyFile(path: testPath, contents: yaml)]
        let refused = PolicyLoader.parse(files, users: lookup)
        #expect(refused.policy == nil)
        expectDiagnostic(refused, line: 3, column: 18, message: "user '0' is uid 0, as is user 'root' of zone 'ops': one user in two zones",
                         hint: "also listed at policy.yaml:2:17")
        // Without the host's answer the two spellings cannot be compared: no error, as before.
        #expect(PolicyLoader.parse(files).errors.isEmpty)
        // Two decimal spellings of one uid need no lookup.
        let padded = parse("zones:\n  a: {users: [\"7\"]}\n  b: {users: [\"007\"]}\n")
        expectDiagnostic(padded, line: 3, column: 15, message: "user '007' is uid 7, as is user '7' of zone 'a'")
    }

    /// Users are classified by uid: the name a query gives and the uid the policy writes (and
    /// the reverse) find the same zone, as the kernel's `meta skuid` map would.
    @Test func explainClassifiesUsersByUid() throws {
        let yaml = """
            zones:
              ops: {users: [deploy]}
              apps: {users: ["1001"]}
              db: {members: [203.0.113.5]}
            allow:
              - {from: ops, to: db, ports: [tcp/5432]}

            """
        let lookup: UserLookup = { ["deploy": 1000, "app": 1001][$0] }
        let policy = try #require(PolicyLoader.parse([PolicyFile(path: testPath, contents: yaml)], users: lookup).policy)
        #expect(policy.userIDs == ["deploy": 1000])
        let evaluator = Evaluator(policy, users: lookup)
        #expect(evaluator.identities.zone(ofUser: "1000") == "ops")
        #expect(evaluator.identities.zone(ofUser: "deploy") == "ops")
        #expect(evaluator.identities.zone(ofUser: "app") == "apps")
        #expect(evaluator.identities.zone(ofUser: "nobody-here") == nil)
    }
}
