import Foundation
import Logging
import Membership
import Synchronization
import Testing
import ZonePolicy

/// The etcd member source and `member add`'s registration against a real etcd server.
@Suite(.serialized)
struct EtcdMemberSourceTests {
    let prefix = "/zonewall/members/"

    func client(_ server: EtcdServer) throws -> EtcdClient {
        try EtcdClient(EtcdConfiguration(endpoints: [server.endpoint], prefix: prefix))
    }

    func value(_ addresses: String...) -> [UInt8] { MemberValue.encode(addresses.map { IPPrefix.parse($0)! }) }

    func isAdded(_ id: String) -> (MemberEvent) -> Bool { { if case .added(let m) = $0 { m.key.instance == id } else { false } } }
    func isRemoved(_ id: String) -> (MemberEvent) -> Bool { { if case .removed(let k) = $0 { k.instance == id } else { false } } }
    func isResynced(_ e: MemberEvent) -> Bool { if case .resynced = e { true } else { false } }
    func isLost(_ e: MemberEvent) -> Bool { if case .lost = e { true } else { false } }

    @Test func listsThenWatchesPutsDeletesAndLeaseExpiry() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        try await c.put(prefix + "web/before", value("198.51.100.1"))
        try await c.put(prefix + "nosuch-shape", value("198.51.100.9"))
        try await c.put(prefix + "web/broken", Array(#"{"addresses": [], "units": []}"#.utf8))
        let log = EventLog(EtcdMemberSource(client: c, logger: Logger(label: "t")))
        guard case .resynced(let members, let rejected, let revision) = try await log.next("first list", where: isResynced) else { return }
        #expect(members == [member("web", "before", "198.51.100.1")])
        #expect(rejected.map(\.key).sorted() == [prefix + "nosuch-shape", prefix + "web/broken"])
        #expect(revision == 4)

        try await c.put(prefix + "web/a", value("198.51.100.2", "2001:db8::2"))
        #expect(try await log.next("put", where: isAdded("a")) == .added(member("web", "a", "198.51.100.2", "2001:db8::2")))
        try await c.delete(prefix + "web/a")
        #expect(try await log.next("delete", where: isRemoved("a")) == .removed(MemberKey(zone: "web", instance: "a")))

        // An invalid update withdraws the previous value and is reported.
        try await c.put(prefix + "web/before", Array("nope".utf8))
        #expect(try await log.next("invalid update", where: isRemoved("before")) == .removed(MemberKey(zone: "web", instance: "before")))
        #expect(try await log.next("rejection") { if case .rejected(let r) = $0 { r.key == prefix + "web/before" } else { false } }
                == .rejected(MemberRejection(key: prefix + "web/before", reason: "value is not JSON")))

        // 5 s: the whole suite on 2 busy CPUs once let a 2 s lease expire before the put that used it.
        let lease = try await c.grant(ttl: 5)
        try await c.put(prefix + "web/leased", value("198.51.100.3"), lease: lease.id)
        _ = try await log.next("leased put", where: isAdded("leased"))
        let started = Date()
        _ = try await log.next(within: 20, "lease expiry", where: isRemoved("leased"))
        #expect(Date().timeIntervalSince(started) > 2, "removed by the expiry, not before")
        log.stop()
        await c.shutdown()
    }

    @Test func deletesOfIgnoredKeysAreReported() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        try await c.put(prefix + "odd-shape", value("198.51.100.9"))
        try await c.put(prefix + "web/bad", Array("nope".utf8))
        let log = EventLog(EtcdMemberSource(client: c, logger: Logger(label: "t")))
        guard case .resynced(_, let rejected, let revision) = try await log.next("first list", where: isResynced) else { return }
        #expect(rejected.count == 2)
        func isProgress(_ e: MemberEvent) -> Bool { if case .progressed = e { true } else { false } }
        try await c.delete(prefix + "odd-shape")
        #expect(try await log.next("delete of a key of another shape") { if case .cleared = $0 { true } else { false } } == .cleared(prefix + "odd-shape"))
        #expect(try await log.next("the watch's revision", where: isProgress) == .progressed(revision + 1))
        try await c.delete(prefix + "web/bad")
        #expect(try await log.next("delete of a bad value", where: isRemoved("bad")) == .removed(MemberKey(zone: "web", instance: "bad")))
        #expect(try await log.next("the watch's revision", where: isProgress) == .progressed(revision + 2))
        let head = try await c.range(prefix: prefix).revision
        #expect(head == revision + 2)

        var table = MemberTable(prefix: prefix)
        table.apply(.resynced([], rejected: rejected, revision: 3))
        table.apply(.cleared(prefix + "odd-shape"))
        table.apply(.removed(MemberKey(zone: "web", instance: "bad")))
        table.apply(.progressed(head))
        #expect(table.rejected.isEmpty && table.revision == head)
        log.stop()
        await c.shutdown()
    }

    @Test func lostWhileEtcdIsDownThenFollowsAgain() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        try await c.put(prefix + "web/a", value("198.51.100.2"))
        let log = EventLog(EtcdMemberSource(client: c, logger: Logger(label: "t"), maxBackoff: .milliseconds(400), probeInterval: .milliseconds(300)))
        _ = try await log.next("first list", where: isResynced)
        server.kill()
        _ = try await log.next("lost", where: isLost)
        try server.start()
        guard case .resynced(let members, _, _) = try await log.next(within: 20, "list after restart", where: isResynced) else { return }
        #expect(members == [member("web", "a", "198.51.100.2")])
        try await c.put(prefix + "web/b", value("198.51.100.3"))
        _ = try await log.next("put after restart", where: isAdded("b"))
        log.stop()
        await c.shutdown()
    }

    @Test func recoversFromACompactionBetweenListAndWatch() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        try await c.put(prefix + "web/a", value("198.51.100.2"))
        // The watch starts 1.5 s after the list; the compaction in between removes its start revision.
        let log = EventLog(EtcdMemberSource(client: c, logger: Logger(label: "t"), watchDelay: .milliseconds(1500)))
        _ = try await log.next("first list", where: isResynced)
        try await c.put(prefix + "web/b", value("198.51.100.3"))
        try await c.delete(prefix + "web/a")
        let rev = try await c.put(prefix + "web/c", value("198.51.100.4"))
        try await c.compact(rev)
        guard case .resynced(let members, _, _) = try await log.next(within: 20, "list after the compaction", where: isResynced) else { return }
        #expect(members == [member("web", "b", "198.51.100.3"), member("web", "c", "198.51.100.4")])
        log.stop()
        await c.shutdown()
    }

    @Test func watchReportsCompactedRevisions() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        try await c.put(prefix + "web/a", value("198.51.100.2"))
        let rev = try await c.put(prefix + "web/a", value("198.51.100.3"))
        try await c.compact(rev)
        await #expect(throws: EtcdError.self) {
            for try await _ in c.watch(prefix: prefix, from: 1) {}
        }
        await c.shutdown()
    }

    @Test func listsOversizedValuesInPages() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        // 50 bad values of 1.4 MB: 93 MB of base64 in one answer, over the client's 64 MB.
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 1_400_000)
        for i in 0..<50 { try await c.put(prefix + "web/big\(i)", big) }
        try await c.put(prefix + "web/ok", value("198.51.100.1"))
        let log = EventLog(EtcdMemberSource(client: c, logger: Logger(label: "t")))
        let first = try await log.next(within: 60, "first event")
        guard case .resynced(let members, let rejected, _) = first else { Issue.record("first event: \(first)"); return }
        #expect(members == [member("web", "ok", "198.51.100.1")])
        #expect(rejected.count == 50 && rejected.allSatisfy { $0.reason == "value is 1400000 bytes; a member value holds at most 65536" },
                "\(rejected.first?.reason ?? "none")")
        log.stop()
        // `member list` reads through the same call.
        #expect(try await c.range(prefix: prefix).kvs.count == 51)
        await c.shutdown()
    }

    @Test func pagesAreReadAtTheFirstPagesRevision() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        for (i, id) in ["a", "b", "c", "d", "e"].enumerated() { try await c.put(prefix + "web/\(id)", value("198.51.100.\(i + 1)")) }
        let before = try await c.range(prefix: prefix, pageLimit: 100)
        // Between pages: a key of a later page is deleted, one changes, one is added.
        let listed = try await c.range(prefix: prefix, pageLimit: 2, afterPage: {
            try await c.delete(prefix + "web/e")
            try await c.put(prefix + "web/d", value("198.51.100.99"))
            try await c.put(prefix + "web/f", value("198.51.100.6"))
        })
        #expect(listed.revision == before.revision)
        #expect(listed.kvs == before.kvs, "one snapshot, at the first page's revision")
        #expect(try await c.range(prefix: prefix).kvs.map(\.key) == ["a", "b", "c", "d", "f"].map { prefix + "web/" + $0 })

        // The first page's revision compacted away between pages: a compaction error, not a mixed list.
        do {
            _ = try await c.range(prefix: prefix, pageLimit: 2, afterPage: {
                try await c.compact(try await c.put(prefix + "web/g", value("198.51.100.7")))
            })
            Issue.record("a list across a compaction succeeded")
        } catch EtcdError.compacted {
        } catch {
            Issue.record("not a compaction error: \(error)")
        }
        await c.shutdown()
    }

    @Test func registrationKeepsTheLeaseAliveAndRevokesOnStop() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        let lines = LineLog()
        let registration = Registration(client: c, member: member("web", "r1", "198.51.100.5"), ttl: 2) { lines.add($0) }
        let task = Task { try await registration.run() }
        try await Task.sleep(for: .seconds(5))  // more than twice the TTL: only keep-alives keep it
        let held = try await c.range(prefix: prefix).kvs
        #expect(held.map(\.key) == [prefix + "web/r1"])
        #expect(held.first?.lease ?? 0 != 0)
        task.cancel()
        _ = await task.result
        #expect(try await c.range(prefix: prefix).kvs.isEmpty, "revoked at once")
        #expect(lines.all.last?.hasPrefix("revoked lease") == true)
        await c.shutdown()
    }

    @Test func registrationWritesItsKeyAgainWhenItIsDeleted() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        let lines = LineLog()
        let registration = Registration(client: c, member: member("web", "r2", "198.51.100.6"), ttl: 3) { lines.add($0) }
        let task = Task { try await registration.run() }
        func held() async throws -> EtcdKeyValue? {
            for _ in 0..<100 {
                if let kv = try await c.get(prefix + "web/r2") { return kv }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }
        let first = try #require(try await held(), "registered")
        try await c.delete(prefix + "web/r2")
        let again = try #require(try await held(), "written again within a renewal (1 s)")
        #expect(again.lease == first.lease && again.value == first.value)
        #expect(lines.all.contains { $0.contains("was deleted; registered again") })
        task.cancel()
        _ = await task.result
        #expect(try await c.get(prefix + "web/r2") == nil, "revoked at once")
        await c.shutdown()
    }

    @Test func aLeaseEtcdRefusesEndsTheRegistration() async throws {
        let server = try EtcdServer()
        let c = try client(server)
        let lines = LineLog()
        // Over etcd's maximum (9,000,000,000 s): refused with HTTP 400, which retrying cannot change.
        let registration = Registration(client: c, member: member("web", "r3", "198.51.100.8"), ttl: 9_000_000_001) { lines.add($0) }
        let task = Task { try await registration.run() }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, !lines.all.contains(where: { $0.contains("refused") }) { try await Task.sleep(for: .milliseconds(20)) }
        task.cancel()  // ends a registration still retrying, so the test fails rather than hangs
        switch await task.result {
        case .success: Issue.record("the registration retried a refused lease: \(lines.all)")
        case .failure(let error):
            guard case EtcdError.server("/v3/lease/grant", 400, let message) = error else { Issue.record("\(error)"); break }
            #expect(message.contains("too large lease TTL"))
        }
        #expect(try await c.range(prefix: prefix).kvs.isEmpty)
        await c.shutdown()
    }

    @Test func memberAddRejectsTTLsOutsideEtcdsRange() throws {
        for ttl in ["9223372036854775807m", "1000000000000h", "0s"] {
            let o = try zonewall(["member", "add", "--etcd-endpoints", "127.0.0.1:1", "--zone", "web", "--address", "198.51.100.7", "--ttl", ttl], seconds: 10)
            #expect(o.status == 1, "\(ttl): \(o)")
            #expect(o.stderr.contains("--ttl '\(ttl)' must be 1s to 9000000000s"), "\(o)")
        }
    }
}

func member(_ zone: String, _ id: String, _ addresses: String...) -> Member {
    Member(key: MemberKey(zone: zone, instance: id), addresses: addresses.map { IPPrefix.parse($0)! })
}

/// Lines a registration reports.
final class LineLog: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ l: String) { lines.withLock { $0.append(l) } }
    var all: [String] { lines.withLock { $0 } }
}
