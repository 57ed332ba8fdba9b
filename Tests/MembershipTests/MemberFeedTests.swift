import Daemon
import Foundation
import Logging
import Membership
import Reconciler
import Ruleset
import Testing
import ZonePolicy

/// The daemon's merge of a member source into the reconciler, against the in-memory kernel and source.
struct MemberFeedTests {
    func policyDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "zw-feed-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try policyText.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
        return dir
    }

    /// Whether the kernel's table mentions `address` (the policy files do not).
    func zoned(_ kernel: InMemoryKernel, _ address: String) throws -> Bool {
        NftText.render(try #require(kernel.table)).contains(address)
    }

    @Test func putsAndDeletesBecomeElementChanges() async throws {
        let dir = try policyDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kernel = InMemoryKernel()
        let reconciler = Reconciler(kernel: kernel, policyDirectory: dir, logger: Logger(label: "t"))
        let source = InMemoryMemberSource([member("api", "one", "192.0.2.7")])
        let feed = MemberFeed(prefix: "/zonewall/members/", cached: [], logger: Logger(label: "t"))
        await reconciler.setAdjustment { feed.merge(into: $0) }
        var events = source.events().makeAsyncIterator()
        #expect(feed.apply(try #require(await events.next())).changed)
        try await reconciler.start()
        #expect(try zoned(kernel, "192.0.2.7"))

        source.put("api", "two", prefixes("192.0.2.8"))
        #expect(feed.apply(try #require(await events.next())).changed)
        let added = try #require(await reconciler.reload("etcd"))
        #expect(!added.replacedTable && added.changes > 0, "a new member is element changes, not a new table")
        #expect(try zoned(kernel, "192.0.2.8"))

        source.disconnect()
        #expect(!feed.apply(try #require(await events.next())).changed)
        #expect(feed.status.connected == false && feed.status.instances == 2, "lost: the members stay")
        source.delete("api", "one")  // unseen while disconnected
        source.reconnect()
        #expect(feed.apply(try #require(await events.next())).changed)
        #expect(feed.status.connected)
        _ = try #require(await reconciler.reload("etcd"))
        #expect(try !zoned(kernel, "192.0.2.7"))
        #expect(try zoned(kernel, "192.0.2.8"))
    }

    @Test func ignoredKeysAreCountedOnce() async throws {
        let feed = MemberFeed(prefix: "/zonewall/members/", cached: [member("nosuch", "x", "192.0.2.1")], logger: Logger(label: "t"))
        let policy = try loadPolicy()
        _ = feed.merge(into: policy)
        _ = feed.merge(into: policy)
        _ = feed.apply(.rejected(MemberRejection(key: "/zonewall/members/web/bad", reason: "value is not JSON")))
        #expect(feed.status.rejectionsTotal == 2)
        #expect(feed.status.rejectedKeys == 2)
    }

    @Test func aNewReasonForTheLossIsPublished() {
        let feed = MemberFeed(prefix: "/zonewall/members/", cached: [], logger: Logger(label: "t"))
        _ = feed.apply(.resynced([], rejected: [], revision: 3))
        #expect(feed.apply(.lost("etcd unreachable: connection refused")).health)
        let again = feed.apply(.lost("etcd /v3/kv/range: answer larger than 67108864 bytes"))
        #expect(again.health, "the status must show the new reason")
        #expect(feed.status.lostReason == "etcd /v3/kv/range: answer larger than 67108864 bytes")
        #expect(!feed.apply(.lost("etcd /v3/kv/range: answer larger than 67108864 bytes")).health)
    }

    @Test func ignoredKeysGoAwayWhenDeleted() throws {
        let p = "/zonewall/members/"
        let feed = MemberFeed(prefix: p, cached: [], logger: Logger(label: "t"))
        _ = feed.apply(.resynced([], rejected: [MemberRejection(key: p + "web/bad", reason: "value is not JSON"),
                                                MemberRejection(key: p + "odd-shape", reason: "key is not <prefix><zone>/<instance-id>")],
                                 revision: 7))
        #expect(feed.status.rejectedKeys == 2)
        #expect(feed.apply(.removed(MemberKey(zone: "web", instance: "bad"))).health, "the status must show the count going down")
        #expect(feed.status.rejectedKeys == 1)
        #expect(feed.apply(.cleared(p + "odd-shape")).health)
        #expect(feed.status.rejectedKeys == 0)
        #expect(feed.status.rejectionsTotal == 2, "the total counts every rejection ever reported")
        _ = feed.merge(into: try loadPolicy())
        #expect(feed.status.rejectedKeys == 0)

        // A bad value replaced by a good one is no longer ignored.
        _ = feed.apply(.rejected(MemberRejection(key: p + "web/x", reason: "value is not JSON")))
        #expect(feed.status.rejectedKeys == 1)
        _ = feed.apply(.added(member("web", "x", "198.51.100.77")))
        #expect(feed.status.rejectedKeys == 0)

        // The status shows the watch's revision, not the list's.
        _ = feed.apply(.progressed(12))
        #expect(feed.status.revision == 12)
    }

    @Test func aKeyIgnoredBeforeAListAndGoneFromItIsNotCounted() {
        let p = "/zonewall/members/"
        let feed = MemberFeed(prefix: p, cached: [], logger: Logger(label: "t"))
        _ = feed.apply(.resynced([], rejected: [MemberRejection(key: p + "web/bad", reason: "value is not JSON")], revision: 3))
        _ = feed.apply(.lost("down"))
        _ = feed.apply(.resynced([], rejected: [], revision: 9))
        #expect(feed.status.rejectedKeys == 0)
    }
}

