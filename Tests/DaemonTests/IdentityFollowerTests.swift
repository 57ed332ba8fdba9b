import Daemon
import Foundation
import HostIdentity
import Logging
import Reconciler
import Ruleset
import Testing

/// The daemon's cgroup following, against an in-memory cgroup tree and kernel (no root).
@Suite struct IdentityFollowerTests {
    static func ids(_ kernel: InMemoryKernel, _ set: String) -> Set<UInt64> {
        Set(kernel.table?.sets.first { $0.name == set }?.elements.map { $0.key[0].lo.low } ?? [])
    }

    /// Polls until `condition` holds, for up to 5 s.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// Polls until the async `condition` holds, for up to 5 s.
    static func eventually(_ condition: () async -> Bool) async -> Bool {
        for _ in 0..<500 {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return await condition()
    }

    @Test func followsARestartWithElementChangesOnly() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-follower-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            zones:
              billing: {units: [billing.service]}
              db: {members: [203.0.113.5]}
            allow:
              - {from: billing, to: db, ports: [tcp/5432]}
            """.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)

        let source = InMemoryCgroupSource()
        source.mkdir("/system.slice")
        let first = source.mkdir("/system.slice/billing.service")
        let kernel = InMemoryKernel()
        let reconciler = Reconciler(kernel: kernel, policyDirectory: dir, logger: Logger(label: "test"))
        await reconciler.setHostResolver { IdentityFollower.facts(for: $0, source: source) }
        try await reconciler.start()
        // Resolved before the first commit: no window in which billing is classified by address.
        #expect(Self.ids(kernel, "cg_out_l2") == [first])
        #expect(await reconciler.state.identities == ["billing: /system.slice/billing.service (cgroup id \(first), level 2)"])

        let follower = IdentityFollower(source: source, reconciler: reconciler, logger: Logger(label: "test"))
        await follower.follow()
        let before = kernel.appliedTransactions.count

        source.rmdir("/system.slice/billing.service")
        let second = source.mkdir("/system.slice/billing.service")
        #expect(await Self.eventually { Self.ids(kernel, "cg_out_l2") == [second] && Self.ids(kernel, "cg_in_l2") == [second] })
        let txs = kernel.appliedTransactions.dropFirst(before)
        let elementOnly = txs.allSatisfy { tx in
            tx.changes.allSatisfy { change in
                switch change {
                case .addElements, .deleteElements: true
                default: false
                }
            }
        }
        #expect(!txs.isEmpty && elementOnly, "\(txs)")

        // A cgroup elsewhere with the unit's name is the unit too; an unrelated one changes nothing.
        source.mkdir("/user.slice")
        let third = source.mkdir("/user.slice/billing.service")
        source.mkdir("/user.slice/other.service")
        #expect(await Self.eventually { Self.ids(kernel, "cg_out_l2") == [second, third] })

        // Status and metrics count what each identity zone resolves to.
        #expect(await Self.eventually { await reconciler.state.identityCounts?["billing"] == IdentityCount(cgroups: 2, uids: 0) })
        let metrics = DaemonMetrics()
        metrics.update(await reconciler.state)
        #expect(metrics.render().contains("zonewall_identity_cgroups{zone=\"billing\"} 2"), "\(metrics.render())")
        #expect(metrics.render().contains("zonewall_identity_uids{zone=\"billing\"} 0"))
        source.rmdir("/user.slice/billing.service")
        #expect(await Self.eventually { await reconciler.state.identityCounts?["billing"]?.cgroups == 1 })
        metrics.update(await reconciler.state)
        #expect(metrics.render().contains("zonewall_identity_cgroups{zone=\"billing\"} 1"))
        await follower.stop()
    }
}
