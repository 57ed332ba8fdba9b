import Foundation
import Revocation
import Testing
import ZonePolicy

func v4(_ text: String) -> UInt128 { IPPrefix.parse(text)!.address }
func v6(_ text: String) -> UInt128 { IPPrefix.parse(text)!.address }

func policy(_ yaml: String) throws -> Policy {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-revocation-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try yaml.write(to: dir.appendingPathComponent("p.yaml"), atomically: true, encoding: .utf8)
    let result = PolicyLoader.load(directory: dir.path)
    return try #require(result.policy, "\(result.diagnostics)")
}

let both = """
    zones:
      web: {members: [192.0.2.16/28, "2001:db8:10::/64"]}
      db: {members: [203.0.113.5, "2001:db8::5"]}
      cache: {members: [203.0.113.6]}
    allow:
      - {from: web, to: db, ports: [tcp/5432, udp/5353]}
      - {from: web, to: cache, ports: [tcp/6379]}
      - {from: web, to: world, ports: [icmp]}
    """

func tcp(_ s: String, _ d: String, _ port: UInt16, sport: UInt16 = 40000) -> ConntrackEntry {
    let fam: AddressFamily = s.contains(":") ? .ipv6 : .ipv4
    return ConntrackEntry(family: fam, proto: 6, source: v4(s), destination: v4(d), sourcePort: sport, destinationPort: port)
}

struct RevocationTests {
    /// A local socket may belong to a unit zone rather than to its address's zone: a flow sent
    /// from this host is revoked only when the policy denies it whichever zone owns the socket.
    @Test func localFlowsOfIdentityZonesAreRevokedOnlyWhenEveryOwnerIsDenied() throws {
        let text = """
            zones:
              billing: {units: [billing.service]}
              reports: {units: [reports.service]}
              db: {members: [203.0.113.5]}
              cache: {members: [203.0.113.6]}
            allow:
              - {from: billing, to: db, ports: [tcp/5432]}
              - {from: host, to: cache, ports: [tcp/6379]}
            """
        let p = try policy(text)
        let local: Set<LocalAddress> = [LocalAddress(family: .ipv4, address: v4("192.0.2.1"))]
        // host → db is denied by address, but billing.service may own the socket: kept.
        let toDB = tcp("192.0.2.1", "203.0.113.5", 5432)
        #expect(Revocation.decide(toDB, with: Evaluator(p), local: local).verdict == .allow)
        // Nobody on this host may reach db on tcp/22: revoked.
        let ssh = tcp("192.0.2.1", "203.0.113.5", 22)
        #expect(Revocation.decide(ssh, with: Evaluator(p), local: local).verdict == .deny)
        // billing loses db: now every possible owner is denied, so the flow is revoked.
        let tightened = try policy(text.replacingOccurrences(of: "  - {from: billing, to: db, ports: [tcp/5432]}\n", with: ""))
        #expect(Revocation.decide(toDB, with: Evaluator(tightened), local: local).verdict == .deny)
        // Without identity zones the address decides alone, as before.
        let addressOnly = try policy("""
            zones:
              db: {members: [203.0.113.5]}
            allow:
              - {from: world, to: db, ports: [tcp/80]}
            """)
        #expect(Revocation.decide(toDB, with: Evaluator(addressOnly), local: local).verdict == .deny)
    }

    /// A conntrack entry records no interface: a remote end in no address zone may have come
    /// through an interface zone, so its flow is revoked only when that zone is denied too.
    @Test func unzonedEndsMayBeInterfaceZones() throws {
        let text = """
            zones:
              partner: {interfaces: ["wgp*"]}
              db: {members: [192.0.2.10]}
            allow:
              - {from: partner, to: db, ports: [tcp/5432-5433]}
              - {from: db, to: partner, ports: [tcp/443]}
            """
        let p = try policy(text)
        let none: Set<LocalAddress> = []
        // Forwarded partner → db tcp/5433 and db → partner tcp/443: allowed through the interface, kept.
        #expect(Revocation.decide(tcp("192.0.2.50", "192.0.2.10", 5433), with: Evaluator(p), local: none).verdict == .allow)
        #expect(Revocation.decide(tcp("192.0.2.10", "192.0.2.50", 443), with: Evaluator(p), local: none).verdict == .allow)
        // Neither world nor partner may reach db on tcp/22: revoked.
        #expect(Revocation.decide(tcp("192.0.2.50", "192.0.2.10", 22), with: Evaluator(p), local: none).verdict == .deny)
        // Once partner loses db, the flow is revoked.
        let tightened = try policy(text.replacingOccurrences(of: "  - {from: partner, to: db, ports: [tcp/5432-5433]}\n", with: ""))
        #expect(Revocation.decide(tcp("192.0.2.50", "192.0.2.10", 5433), with: Evaluator(tightened), local: none).verdict == .deny)
    }

    @Test func deniedFlowsAreRevokedAllowedAndUngovernedOnesAreNot() throws {
        let old = try policy(both)
        let new = try policy(both.replacingOccurrences(of: "tcp/5432, udp/5353", with: "udp/5353"))
        let lost = tcp("192.0.2.20", "203.0.113.5", 5432)
        let kept = tcp("192.0.2.20", "203.0.113.6", 6379)
        let keptUDP = ConntrackEntry(family: .ipv4, proto: 17, source: v4("192.0.2.20"), destination: v4("203.0.113.5"),
                                     sourcePort: 5000, destinationPort: 5353)
        let ungoverned = tcp("198.51.100.7", "198.51.100.8", 5432)      // world → world
        let lost6 = tcp("2001:db8:10::7", "2001:db8::5", 5432)
        let ping = ConntrackEntry(family: .ipv4, proto: 1, source: v4("192.0.2.20"), destination: v4("198.51.100.9"), icmpType: 8, icmpID: 7)
        let table = InMemoryConntrack([lost, kept, keptUDP, ungoverned, lost6, ping])
        let report = try Revocation.revoke(in: table, new: new, old: old)
        #expect(report.scanned == 6)
        #expect(Set(report.revoked.map(\.entry)) == [lost, lost6])
        #expect(report.deleted == 2)
        #expect(Set(table.entries) == [kept, keptUDP, ungoverned, ping])
        let r = try #require(report.revoked.first { $0.entry == lost })
        #expect(r.from == "web" && r.to == "db")
        #expect(r.previouslyAllowed == true)
        #expect(r.entry.protoAndPort == ("tcp", "5432"))
    }

    /// Flows an audit zone would be denied pass the firewall, so they are not revoked; the
    /// edit that enforces the zone revokes them.
    @Test func auditedFlowsStayAndEnforcingTheZoneRevokesThem() throws {
        let audited = try policy(both.replacingOccurrences(of: "cache: {members: [203.0.113.6]}",
                                                           with: "cache: {members: [203.0.113.6], audit: true}"))
        let toCacheDenied = tcp("192.0.2.20", "203.0.113.6", 22)   // web → cache allows only tcp/6379
        let toDBDenied = tcp("192.0.2.20", "203.0.113.5", 22)      // db is enforced
        let table = InMemoryConntrack([toCacheDenied, toDBDenied])
        let first = try Revocation.revoke(in: table, new: audited, old: nil)
        #expect(first.revoked.map(\.entry) == [toDBDenied])
        #expect(table.entries == [toCacheDenied])
        let enforced = try policy(both)
        let second = try Revocation.revoke(in: table, new: enforced, old: audited)
        #expect(second.revoked.map(\.entry) == [toCacheDenied])
        #expect(second.revoked.first?.previouslyAllowed == true)
        #expect(table.entries.isEmpty)
    }

    @Test func aMemberMovedOutOrAZoneDeletedRevokes() throws {
        let old = try policy(both)
        // 192.0.2.20 leaves web: it is world now, and world may not reach db.
        let moved = try policy(both.replacingOccurrences(of: "192.0.2.16/28", with: "192.0.2.32/28"))
        let e = tcp("192.0.2.20", "203.0.113.5", 5432)
        let other = tcp("192.0.2.33", "203.0.113.5", 5432)
        let table = InMemoryConntrack([e, other])
        let report = try Revocation.revoke(in: table, new: moved, old: old)
        #expect(report.revoked.map(\.entry) == [e])
        #expect(report.revoked.first?.from == "world")
        #expect(table.entries == [other])

        // cache deleted: its address is world, and web → world admits only icmp.
        let deleted = try policy("""
            zones:
              web: {members: [192.0.2.16/28]}
              db: {members: [203.0.113.5]}
            allow:
              - {from: web, to: db, ports: [tcp/5432]}
            """)
        let toCache = tcp("192.0.2.20", "203.0.113.6", 6379)
        let t2 = InMemoryConntrack([toCache])
        #expect(try Revocation.revoke(in: t2, new: deleted, old: old).revoked.first?.to == "world")
        #expect(t2.entries.isEmpty)
    }

    @Test func optingOutScansNothing() throws {
        let p = try policy(both + "\nsettings: {revoke_established: false}\n")
        let table = InMemoryConntrack([tcp("192.0.2.20", "203.0.113.5", 22)])
        let report = try Revocation.revoke(in: table, new: p, old: nil)
        #expect(report.scanned == 0 && table.scans == 0 && table.entries.count == 1)
    }

    @Test func hooksComeFromTheLocalAddresses() throws {
        let p = try policy(both)
        let local: Set<LocalAddress> = [LocalAddress(family: .ipv4, address: v4("198.51.100.1"))]
        // web → this host on tcp/22: no rule; denied on the input hook.
        let ssh = tcp("192.0.2.20", "198.51.100.1", 22)
        #expect(Revocation.hooks(of: ssh, local: local) == [.input])
        let d = Revocation.decide(ssh, with: Evaluator(p), local: local)
        #expect(d.verdict == .deny && d.to == .host)
        // The same tuple, routed: web → world on tcp/22 is denied as well, but as world.
        #expect(Revocation.decide(ssh, with: Evaluator(p), local: []).to == .world)
        // With tcp/22 as a failsafe port the delivered flow stays.
        let safe = try policy(both + "\nsettings: {failsafe: [tcp/22]}\n")
        #expect(Revocation.decide(ssh, with: Evaluator(safe), local: local).verdict == .allow)
        #expect(Revocation.decide(ssh, with: Evaluator(safe), local: []).verdict == .deny)  // failsafe is for this host only
    }

    @Test func theFilterSawTheTranslatedDestination() throws {
        let p = try policy(both)
        // DNAT 198.51.100.80:80 → db:5432: the forward hook saw db:5432, which web may reach.
        var e = tcp("192.0.2.20", "198.51.100.80", 80)
        e.translatedDestination = v4("203.0.113.5")
        e.translatedDestinationPort = 5432
        #expect(Revocation.decide(e, with: Evaluator(p), local: []).verdict == .allow)
    }
}

import Ruleset
import ZoneCompiler

/// Revocation against a compiled table (a restore, where no policy is known) agrees with the policy's.
struct RestoreRevocationTests {
    @Test func theTableJudgesLikeThePolicy() throws {
        let p = try policy(both)
        let table = ZoneCompiler.compile(p)
        let entries = [
            tcp("192.0.2.20", "203.0.113.5", 5432), tcp("192.0.2.20", "203.0.113.5", 5433),
            tcp("192.0.2.20", "203.0.113.6", 6379), tcp("198.51.100.7", "198.51.100.8", 22),
            tcp("203.0.113.5", "192.0.2.20", 5432),
        ]
        let byPolicy = Set(entries.filter { Revocation.plan($0, new: Evaluator(p), old: nil, local: []) != nil })
        let byTable = Set(entries.filter { Revocation.plan($0, table: Interpreter(table), local: []) != nil })
        #expect(byPolicy == byTable)
        #expect(byPolicy == [entries[1], entries[4]])
    }

    /// A restore judges an unzoned end as a possible interface zone's too, as the policy path
    /// does: the entry records no interface. The partner flow through `wgp*` stays; what neither
    /// world nor partner may reach is cut.
    @Test func theTableConsidersInterfaceZones() throws {
        let text = """
            zones:
              partner: {interfaces: ["wgp*", wgx0]}
              db: {members: [192.0.2.10]}
            allow:
              - {from: partner, to: db, ports: [tcp/5432-5433]}
              - {from: db, to: partner, ports: [tcp/443]}
            """
        let table = ZoneCompiler.compile(try policy(text))
        #expect(Revocation.interfaceNames(in: table) == ["wgp", "wgx0"])
        let kept = [tcp("192.0.2.50", "192.0.2.10", 5433), tcp("192.0.2.10", "192.0.2.50", 443)]
        let cut = [tcp("192.0.2.50", "192.0.2.10", 22), tcp("192.0.2.10", "192.0.2.50", 444)]
        let conntrack = InMemoryConntrack(kept + cut)
        let report = try Revocation.revoke(in: conntrack, restoring: table)
        #expect(Set(report.revoked.map(\.entry)) == Set(cut))
        #expect(Set(conntrack.entries) == Set(kept))
        // Without the interfaces, the partner flows would have been cut as world's.
        #expect(kept.allSatisfy { Revocation.plan($0, table: Interpreter(table), local: []) != nil })
    }

    /// With the socket table, a local end is judged by its socket's owner: the flow of the unit
    /// that lost permission is revoked although another unit keeps it; the other unit's flow,
    /// a user's flow and a receiving unit's flow are judged by their own zones.
    @Test func socketOwnersDecideLocalEnds() throws {
        let text = """
            zones:
              billing: {units: [billing.service]}
              reports: {units: [reports.service]}
              ops: {users: ["4242"]}
              db: {members: [203.0.113.5]}
              pg: {units: [pg.service]}
            allow:
              - {from: billing, to: db, ports: [tcp/5432]}
              - {from: reports, to: db, ports: [tcp/5432]}
              - {from: ops, to: db, ports: [tcp/5432]}
              - {from: db, to: pg, ports: [tcp/5433]}
            """
        let old = try policy(text)
        let new = try policy(text.replacingOccurrences(of: "  - {from: reports, to: db, ports: [tcp/5432]}\n", with: "")
            .replacingOccurrences(of: "  - {from: ops, to: db, ports: [tcp/5432]}\n", with: "")
            .replacingOccurrences(of: "  - {from: db, to: pg, ports: [tcp/5433]}", with: ""))
        let me = v4("192.0.2.1")
        let local: Set<LocalAddress> = [LocalAddress(family: .ipv4, address: me)]
        let fromBilling = tcp("192.0.2.1", "203.0.113.5", 5432, sport: 41001)
        let fromReports = tcp("192.0.2.1", "203.0.113.5", 5432, sport: 41002)
        let fromOps = tcp("192.0.2.1", "203.0.113.5", 5432, sport: 41003)
        let fromGone = tcp("192.0.2.1", "203.0.113.5", 5432, sport: 41004)  // its socket is gone
        let toPg = tcp("203.0.113.5", "192.0.2.1", 5433, sport: 50000)
        func socket(_ port: UInt16, uid: UInt32 = 0, cgroup: String, remote: String = "203.0.113.5", remotePort: UInt16 = 5432) -> LocalSocket {
            LocalSocket(family: .ipv4, proto: 6, localAddress: me, localPort: port, remoteAddress: v4(remote), remotePort: remotePort,
                        uid: uid, cgroupID: UInt64(port), cgroupPath: cgroup)
        }
        let sockets = InMemorySockets([
            socket(41001, cgroup: "/system.slice/billing.service"),
            // A child cgroup of the unit's: the deepest named ancestor decides.
            socket(41002, cgroup: "/system.slice/reports.service/worker"),
            socket(41003, uid: 4242, cgroup: "/user.slice/user-4242.slice/session-1.scope"),
            // pg.service's listener: the accepted socket is found through it.
            LocalSocket(family: .ipv4, proto: 6, localAddress: 0, localPort: 5433, uid: 0, cgroupID: 9, cgroupPath: "/system.slice/pg.service"),
        ])
        let all = [fromBilling, fromReports, fromOps, fromGone, toPg]

        // Without owners, every local end may be billing's, so nothing sent is cut; pg's
        // listener may be any receiving unit's, and none of them may be reached now.
        let blind = InMemoryConntrack(all, local: local)
        let report = try Revocation.revoke(in: blind, new: new, old: old)
        #expect(Set(report.revoked.map(\.entry)) == [toPg])
        #expect(report.sockets == nil)

        // With owners: reports' and ops' flows are cut, billing's stays, the one whose socket is
        // gone is judged as before (kept), and pg's is cut.
        let table = InMemoryConntrack(all, local: local)
        let owned = try Revocation.revoke(in: table, sockets: sockets, new: new, old: old)
        #expect(Set(owned.revoked.map(\.entry)) == [fromReports, fromOps, toPg])
        #expect(Set(table.entries) == [fromBilling, fromGone])
        #expect(owned.sockets == 4 && sockets.reads == 1)
        let byFlow = Dictionary(uniqueKeysWithValues: owned.revoked.map { ($0.entry, $0) })
        #expect(byFlow[fromReports]?.from == "reports" && byFlow[fromReports]?.previouslyAllowed == true)
        #expect(byFlow[fromOps]?.from == "ops")
        #expect(byFlow[toPg]?.to == "pg")

        // A policy without identity zones never reads the socket table.
        let plain = try policy(both)
        let untouched = InMemorySockets([])
        _ = try Revocation.revoke(in: InMemoryConntrack([tcp("192.0.2.20", "203.0.113.5", 22)]), sockets: untouched, new: plain, old: nil)
        #expect(untouched.reads == 0)
    }

    /// A socket table that cannot be read costs the owners, not the pass.
    @Test func anUnreadableSocketTableFallsBackToEveryPossibleOwner() throws {
        struct Broken: SocketTable { func sockets() throws -> [LocalSocket] { throw CocoaError(.fileReadNoPermission) } }
        let p = try policy("""
            zones:
              billing: {units: [billing.service]}
              db: {members: [203.0.113.5]}
            allow:
              - {from: billing, to: db, ports: [tcp/5432]}
            """)
        let local: Set<LocalAddress> = [LocalAddress(family: .ipv4, address: v4("192.0.2.1"))]
        let ssh = tcp("192.0.2.1", "203.0.113.5", 22)
        let table = InMemoryConntrack([tcp("192.0.2.1", "203.0.113.5", 5432), ssh], local: local)
        let report = try Revocation.revoke(in: table, sockets: Broken(), new: p, old: nil)
        #expect(report.socketsError != nil)
        #expect(report.revoked.map(\.entry) == [ssh])
    }

    /// Over loopback both hooks see the flow; a sender of a local zone passes its output hook
    /// (the rule set marks it), so only the input hook, with the receiver, can cut it.
    @Test func loopbackFlowsBetweenLocalZones() throws {
        let text = """
            zones:
              billing: {units: [billing.service]}
              reports: {units: [reports.service]}
              pg: {units: [pg.service]}
            allow:
              - {from: billing, to: pg, ports: [tcp/5432]}
            """
        let lo = v4("127.0.0.1")
        let local: Set<LocalAddress> = [LocalAddress(family: .ipv4, address: lo)]
        let fromBilling = tcp("127.0.0.1", "127.0.0.1", 5432, sport: 41001)
        let fromReports = tcp("127.0.0.1", "127.0.0.1", 5432, sport: 41002)
        func client(_ port: UInt16, _ unit: String) -> LocalSocket {
            LocalSocket(family: .ipv4, proto: 6, localAddress: lo, localPort: port, remoteAddress: lo, remotePort: 5432,
                        uid: 0, cgroupID: UInt64(port), cgroupPath: "/system.slice/\(unit)")
        }
        let sockets = InMemorySockets([
            client(41001, "billing.service"), client(41002, "reports.service"),
            LocalSocket(family: .ipv4, proto: 6, localAddress: lo, localPort: 5432, uid: 0, cgroupID: 1, cgroupPath: "/system.slice/pg.service"),
        ])
        // The rule keeps billing's flow; reports has none, so its flow goes.
        let table = InMemoryConntrack([fromBilling, fromReports], local: local)
        let report = try Revocation.revoke(in: table, sockets: sockets, new: try policy(text), old: nil)
        #expect(report.revoked.map(\.entry) == [fromReports])
        #expect(report.revoked.first.map { "\($0.from) → \($0.to)" } == "reports → pg")
        // billing loses pg: its flow goes too.
        let tightened = try policy(text.replacingOccurrences(of: "  - {from: billing, to: pg, ports: [tcp/5432]}", with: ""))
        let again = try Revocation.revoke(in: table, sockets: sockets, new: tightened, old: nil)
        #expect(again.revoked.map(\.entry) == [fromBilling])
    }
}
