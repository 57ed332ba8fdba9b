import Daemon
import Foundation
import HostScope
import Logging
import Membership
import Reconciler
import Ruleset
import ServiceLifecycle
import Testing
import ZonePolicy

/// The whole daemon against the in-memory kernel, member source and host addresses.
struct DaemonSourcesTests {
    let policyYAML = """
        zones:
          web: {members: [198.51.100.0/28]}
          api: {members: [203.0.113.10]}
          db: {members: [203.0.113.20]}
        allow:
          - {from: web, to: api, ports: [tcp/443]}
          - {from: api, to: db, ports: [tcp/5432]}
        """

    func until(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<300 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("timed out waiting for: \(what)")
    }

    @Test func followsMembersAndHostAddresses() async throws {
        let dir = NSTemporaryDirectory() + "zw-daemon-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try policyYAML.write(toFile: dir + "/policies/p.yaml", atomically: true, encoding: .utf8)

        let kernel = InMemoryKernel()
        let members = InMemoryMemberSource()
        let host = InMemoryHostAddresses([IPPrefix.parse("192.0.2.50")!])  // no zone holds it yet
        var config = DaemonConfiguration(policyDirectory: dir + "/policies", stateFile: dir + "/state.json",
                                         resyncInterval: .seconds(600), removeOnExit: false, metricsAddress: nil)
        config.memberSource = members
        config.memberCache = dir + "/members.json"
        config.hostAddresses = host
        let daemon = ZonewallDaemon(kernel: kernel, configuration: config, logger: Logger(label: "t"))
        let group = ServiceGroup(configuration: .init(services: [.init(service: daemon)], logger: Logger(label: "t")))
        let running = Task { try await group.run() }

        func text() -> String { kernel.table.map { NftText.render($0) } ?? "" }
        try await until("the table") { kernel.table != nil }
        #expect(!text().contains("hook forward"), "scope local: input and output only")
        #expect(!text().contains("chain z_"), "no zone is local: no zone's rules")

        // An etcd member puts this host's address into api: api → db and web → api apply here.
        members.put("api", "i1", [IPPrefix.parse("192.0.2.50")!])
        try await until("api's rules") { text().contains("chain z_api") && text().contains("chain z_web") }
        // Persisted once per batch, right after the batch's commit.
        try await until("the member persisted") {
            (try? MemberCache(path: dir + "/members.json").read(prefix: "/zonewall/members/").count) == 1
        }

        // The address leaves the host: nothing is local again.
        host.remove(IPPrefix.parse("192.0.2.50")!)
        try await until("no zone chain") { !text().contains("chain z_") }
        // It comes back, and db's address too: db's rules are api → db only.
        host.add(IPPrefix.parse("192.0.2.50")!)
        host.add(IPPrefix.parse("203.0.113.20")!)
        try await until("both") { text().contains("chain z_api") && text().contains("chain z_web") }

        members.disconnect()
        try await until("status says lost") {
            (try? StateFile(path: dir + "/state.json").read().memberSource?.connected) == false
        }
        #expect(text().contains("chain z_api"), "fail-static: the members stay in force")

        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test func aRestartWhileTheSourceIsDownPublishesItsReasonAndTheIgnoredCachedKeys() async throws {
        let dir = NSTemporaryDirectory() + "zw-daemon-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try policyYAML.write(toFile: dir + "/policies/p.yaml", atomically: true, encoding: .utf8)
        // The last known members: one good, one of a zone the policy does not declare.
        try MemberCache(path: dir + "/members.json").write(MemberTable(prefix: "/zonewall/members/", members: [
            Member(key: MemberKey(zone: "api", instance: "i1"), addresses: [IPPrefix.parse("192.0.2.77")!]),
            Member(key: MemberKey(zone: "nosuch", instance: "i2"), addresses: [IPPrefix.parse("203.0.113.12")!]),
        ]))

        let kernel = InMemoryKernel()
        let members = InMemoryMemberSource()
        members.disconnect()  // etcd is down while the daemon starts
        var config = DaemonConfiguration(policyDirectory: dir + "/policies", stateFile: dir + "/state.json",
                                         resyncInterval: .seconds(600), removeOnExit: false, metricsAddress: nil)
        config.memberSource = members
        config.memberCache = dir + "/members.json"
        let daemon = ZonewallDaemon(kernel: kernel, configuration: config, logger: Logger(label: "t"))
        let group = ServiceGroup(configuration: .init(services: [.init(service: daemon)], logger: Logger(label: "t")))
        let running = Task { try await group.run() }

        try await until("the cached member in force") { kernel.table.map { NftText.render($0) }?.contains("192.0.2.77") == true }
        func status() -> MemberSourceStatus? { try? StateFile(path: dir + "/state.json").read().memberSource }
        try await until("the status shows the ignored cached key and why etcd is lost") {
            status()?.rejectedKeys == 1 && status()?.lostReason == "disconnected"
        }
        #expect(status()?.connected == false, "\(String(describing: status()))")
        #expect(status()?.rejectionsTotal == 1, "what the metric zonewall_etcd_rejected_keys_total counts")

        await group.triggerGracefulShutdown()
        try await running.value
    }
}

