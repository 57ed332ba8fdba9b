import Ruleset
import TestSupport
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// The compiled shape: one lookup per zone and family, verdicts equal to the release's shape,
/// and membership edits that stay edits of the zone's objects.
struct ShapeTests {
    /// The issue's policy shape: 10 members a zone (mostly addresses, some prefixes, every 4th
    /// zone an IPv6 /64 too), 2 rules a zone to random zones, most with two port specs and
    /// `icmp`, every 7th `any`.
    static func issueShape(zones n: Int, seed: UInt64 = 9) -> Policy {
        var g = SplitMix64(seed: seed)
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)
        var zones: [Zone] = []
        for i in 0..<n {
            var members: [Located<IPPrefix>] = []
            for k in 0..<10 {
                // Addresses above 10.0.0.0, 16 per zone; every 5th member a /30.
                let address = UInt128(0x0A00_0000 + i * 64 + k * 4)
                members.append(Located(IPPrefix(family: .ipv4, address: address, length: k % 5 == 4 ? 30 : 32), at: loc))
            }
            if i % 4 == 0 {
                members.append(Located(IPPrefix(family: .ipv6, address: (0x2001_0db8 << 96) | (UInt128(i) << 64), length: 64), at: loc))
            }
            zones.append(Zone(name: "z\(i)", members: members, location: loc))
        }
        var rules: [AllowRule] = []
        var r = 0
        for i in 0..<n {
            for _ in 0..<2 {
                r += 1
                let to = Int.random(in: 0..<n, using: &g)
                let ports: [PortSpec] = r % 7 == 0 ? [.any]
                    : [.ports(.tcp, UInt16(r % 1000 + 1)...UInt16(r % 1000 + 1)), .ports(.udp, 5000...5010), .icmpEcho]
                rules.append(AllowRule(from: [.zone("z\(i)")], to: [.zone("z\(to)")], ports: ports, location: loc))
            }
        }
        return Policy(zones: zones, rules: rules, settings: Settings())
    }

    @Test func setCountStaysNearTheZoneCount() {
        let policy = Self.issueShape(zones: 400)
        let table = ZoneCompiler.compile(policy), release = ZoneCompiler.compileReleaseShape(policy)
        // 6 maps and 2 zoned sets, 8 world/host sets, one set per zone and family it sends in.
        #expect(table.sets.count <= 400 * 12 / 10, "\(table.sets.count) sets for 400 zones")
        #expect(release.sets.count > 2 * 400, "the release's shape had about three sets a zone")
        // Zone chains hold a rule per family, ports chains at most `inlineLimit` rules; `deny` and
        // `invalid` are fixed, whatever the policy.
        #expect(table.chains.allSatisfy {
            $0.base != nil || $0.rules.count <= ($0.name.hasPrefix("ports_") ? Admits.inlineLimit : 2) || ["deny", "invalid"].contains($0.name)
        })
        // No concatenated interval set (pipapo in the kernel) per zone: the zones' maps are keyed
        // by the destination address alone, and the ports chains are shared.
        let zoneMaps = table.sets.filter { $0.name.hasPrefix("z_") }
        #expect(zoneMaps.count >= 400 && zoneMaps.allSatisfy { $0.keyType.count == 1 && $0.dataType == .verdict })
        // One ports chain per distinct admission (this shape has a port of its own in most rules).
        #expect(table.chains.filter { $0.name.hasPrefix("ports_") }.count <= policy.rules.count)
        #expect(table.chains.first { $0.name == "invalid" }?.rules.count == 3)
    }

    /// Without audit zones or a flow log, the table neither reads nor writes the conntrack mark,
    /// and the model has no statement for the packet mark at all: in the text nft would load,
    /// no rule names a mark.
    @Test func marksAreLeftAlone() {
        let table = ZoneCompiler.compile(Self.issueShape(zones: 60))
        let text = NftText.replaceScript(table)
        #expect(!text.contains("mark"), "a mark in the table")
        for rule in table.chains.flatMap(\.rules) {
            for e in rule.expressions {
                switch e {
                case .setCtMarkField: Issue.record("ct mark written: \(NftText.render(rule))")
                case .match(let s, _) where s == .ctMark: Issue.record("ct mark read: \(NftText.render(rule))")
                case .lookup(let keys, _, _), .verdictMap(let keys, _):
                    #expect(!keys.contains(.ctMark), "\(NftText.render(rule))")
                default: break
                }
            }
        }
    }

    /// Packets the agreement tests do not vary: source ports, ICMP codes and other ICMP types,
    /// protocols without ports. Both shapes must agree on every one of them.
    static func packets(_ policy: Policy, family: AddressFamily) -> [Packet] {
        let addrs = AgreementTests.probeAddresses(policy, family: family)
        let icmp: UInt8 = family == .ipv4 ? 1 : 58
        var flows: [(UInt8, UInt16, UInt16, UInt8, UInt8)] = []  // proto, sport, dport, type, code
        for proto: UInt8 in [6, 17, 132] {
            for dport: UInt16 in [0, 22, 53, 80, 443, 5432, 65535] {
                for sport: UInt16 in [0, 2048, 33000, 65535] { flows.append((proto, sport, dport, 0, 0)) }
            }
        }
        for type: UInt8 in [0, 3, 8, 11, 13, 128, 129, 1] {
            for code: UInt8 in [0, 1, 255] { flows.append((icmp, 0, 443, type, code)) }
        }
        for proto: UInt8 in [0, 1, 47, 50, 58, 255] { flows.append((proto, 0, 0, 0, 0)) }
        let w = family == .ipv4 ? 4 : 16
        var out: [Packet] = []
        for s in addrs {
            for d in addrs {
                for f in flows {
                    out.append(Packet(family: family == .ipv4 ? .ipv4 : .ipv6, source: Value(s, width: w), destination: Value(d, width: w),
                                      l4proto: f.0, transportOffset2: f.2, icmpType: f.3, ctState: 8, sourcePort: f.1, icmpCode: f.4))
                }
            }
        }
        return out
    }

    // Six seeds: each takes about 23 s in a debug build, and CI's whole run has to stay within
    // 40 minutes (twelve cost it 2.3 minutes more; AgreementTests covers other random policies).
    @Test(arguments: Array(1...6) as [UInt64])
    func everyVerdictEqualsTheReleaseShape(seed: UInt64) {
        let policy = RandomPolicy.make(seed: seed, zones: 7, rules: 12)
        let new = Interpreter(ZoneCompiler.compile(policy)), old = Interpreter(ZoneCompiler.compileReleaseShape(policy))
        var mismatches: [String] = []
        var invalidAccepted = 0
        for family in AddressFamily.allCases {
            // New packets, and invalid ones: the shape tests the zones before it lets ungoverned
            // traffic pass, and sends invalid packets to a chain of their own.
            let packets = Self.packets(policy, family: family)
            for p in packets + packets.map({ var q = $0; q.ctState = 1; return q }) {
                for hook in [Hook.input, .forward, .output] {
                    let verdict = new.evaluate(p, hook: hook)
                    if verdict != old.evaluate(p, hook: hook), mismatches.count < 5 { mismatches.append("\(hook) \(p)") }
                    if p.ctState == 1, verdict == .accept { invalidAccepted += 1 }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
        // Invalid packets with neither end in a zone pass, the others are denied: both kinds were probed.
        #expect(invalidAccepted > 0)
    }

    @Test func issueShapeVerdictsEqualTheReleaseShape() {
        let policy = Self.issueShape(zones: 12)
        let new = Interpreter(ZoneCompiler.compile(policy)), old = Interpreter(ZoneCompiler.compileReleaseShape(policy))
        var compared = 0, mismatches = 0
        for family in AddressFamily.allCases {
            for p in Self.packets(policy, family: family) {
                compared += 1
                if new.evaluate(p, hook: .forward) != old.evaluate(p, hook: .forward) { mismatches += 1 }
            }
        }
        #expect(compared > 1000)
        #expect(mismatches == 0)
    }

    /// An admission longer than a ports chain holds inline is one set lookup: verdicts are the
    /// release shape's, and every chain stays within the bound.
    @Test func longAdmissionsAreOneLookup() throws {
        var policy = RandomPolicy.make(seed: 5, zones: 5, rules: 6)
        var many: [PortSpec] = [.wholeProtocol(.sctp), .icmpEcho, .ports(.udp, 53...53)]
        for k in 0..<9 {
            let lo = UInt16(1000 + 10 * k)
            many.append(.ports(.tcp, lo...(lo + UInt16(k % 2) * 5)))
        }
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)
        policy.rules.append(AllowRule(from: [.zone(policy.zones[0].name)], to: [.zone(policy.zones[1].name)], ports: many, location: loc))
        let table = ZoneCompiler.compile(policy)
        func looksUpAPortsSet(_ chain: Chain) -> Bool {
            chain.rules.contains { rule in
                rule.expressions.contains { if case .lookup(_, let set, _) = $0 { set.hasPrefix("ports_") } else { false } }
            }
        }
        let long = try #require(table.chains.first(where: looksUpAPortsSet))
        // The port lookup, then echo in each family.
        #expect(long.rules.count == 3)
        #expect(table.set(named: long.name)?.elements.count == 11)
        #expect(long.name.utf8.count <= 64)
        #expect(table.chains.allSatisfy { $0.base != nil || $0.rules.count <= Admits.inlineLimit || ["deny", "invalid"].contains($0.name) })
        let new = Interpreter(table), old = Interpreter(ZoneCompiler.compileReleaseShape(policy))
        var mismatches = 0, accepted = 0
        for family in AddressFamily.allCases {
            for p in Self.packets(policy, family: family) {
                let v = new.evaluate(p, hook: .forward)
                if v != old.evaluate(p, hook: .forward) { mismatches += 1 }
                if v == .accept { accepted += 1 }
            }
        }
        #expect(mismatches == 0)
        #expect(accepted > 0)
    }

    /// Chain names say what the chain admits, and stay within the kernel's limit however long
    /// the admission.
    @Test func portsChainNames() {
        var a = Admits()
        a.add(.ports(.tcp, 443...443)); a.add(.ports(.udp, 53...60)); a.add(.icmpEcho); a.add(.wholeProtocol(.sctp))
        #expect(a.normalized.chainName == "ports_tcp.443_udp.53-60_sctp_icmp")
        a.add(.any)
        #expect(a.normalized.chainName == "ports_any")
        var long = Admits(), other = Admits()
        for k in 0..<40 { long.add(.ports(.tcp, UInt16(k * 100)...UInt16(k * 100))); other.add(.ports(.tcp, UInt16(k * 100 + 1)...UInt16(k * 100 + 1))) }
        let (n1, n2) = (long.normalized.chainName, other.normalized.chainName)
        #expect(n1.utf8.count <= 64 && n2.utf8.count <= 64 && n1 != n2)
        #expect(n1.hasPrefix("ports_tcp.0_tcp.100"))
    }

    /// Applies `tx` to `start` the way the kernel would and checks the result is `desired`.
    static func applied(_ tx: Transaction, to start: Table, gives desired: Table) throws -> Bool {
        let kernel = InMemoryKernel(table: start)
        try kernel.apply(tx, expectingGeneration: nil)
        return try #require(try kernel.dump(family: start.family, table: start.name).table).isEquivalent(to: desired)
    }

    @Test func membershipEditsStayEditsOfTheZonesObjects() throws {
        let policy = Self.issueShape(zones: 200)
        let before = ZoneCompiler.compile(policy)
        let loc = SourceLocation(path: "gen.yaml", line: 1, column: 1)

        // A member more and one fewer in a zone others send to: element changes only.
        let target = try #require(policy.rules.first.flatMap { r -> Int? in
            if case .zone(let name) = r.to[0] { return policy.zones.firstIndex { $0.name == name } } else { return nil }
        })
        var edited = policy
        edited.zones[target].members.removeFirst()
        edited.zones[target].members.append(Located(IPPrefix(family: .ipv4, address: 0xC000_0207, length: 32), at: loc))
        let after = ZoneCompiler.compile(edited)
        let tx = Transaction.diff(from: before, to: after)
        #expect(!tx.replacesTable)
        #expect(tx.changes.allSatisfy { if case .addElements = $0 { true } else if case .deleteElements = $0 { true } else { false } })
        #expect(tx.elementChanges > 0)
        #expect(try Self.applied(tx, to: before, gives: after))

        // A first IPv6 member in a zone with no IPv6 destination yet: its set and one rule are
        // added, nothing is removed, the table is not replaced.
        let newcomer = try #require(edited.zones.indices.first { i in
            i % 4 != 0 && !before.sets.contains { $0.name == "z_z\(i)_v6" }
                && edited.rules.contains { $0.from == [.zone("z\(i)")] && $0.to.contains { if case .zone(let t) = $0 { Int(t.dropFirst())! % 4 == 0 } else { false } } }
        })
        var v6 = edited
        v6.zones[newcomer].members.append(Located(IPPrefix(family: .ipv6, address: (0x2001_0db8_00ff << 80) | 1, length: 128), at: loc))
        let grown = ZoneCompiler.compile(v6)
        let add = Transaction.diff(from: after, to: grown)
        #expect(!add.replacesTable)
        #expect(add.changes.contains(.addSet(try #require(grown.set(named: "z_z\(newcomer)_v6")).declaration)))
        #expect(!add.changes.contains { if case .addChain = $0 { true } else { false } })
        #expect(try Self.applied(add, to: after, gives: grown))
        // And back: removing it again is allowed to replace the table (objects go away).
        #expect(Transaction.diff(from: grown, to: after).replacesTable)
    }
}
