import Daemon
import Dispatch
import Foundation
import Glibc
import Logging
import Ruleset
import ServiceLifecycle
import Synchronization
import Testing

/// An in-memory kernel whose `apply` can be made to hang, as a kernel call stuck in the
/// kernel would.
final class StallingKernel: KernelRuleset, @unchecked Sendable {
    let base = InMemoryKernel()
    let stalling = Mutex(false)
    let gate = DispatchSemaphore(value: 0)

    func dump(family: Family, table name: String) throws -> KernelSnapshot { try base.dump(family: family, table: name) }
    func dumpSkeleton(family: Family, table name: String) throws -> KernelSnapshot { try base.dumpSkeleton(family: family, table: name) }
    func elements(of sets: [NamedSet], family: Family, table: String) throws -> [NamedSet] {
        try base.elements(of: sets, family: family, table: table)
    }
    func apply(_ transaction: Transaction, expectingGeneration generation: UInt32?) throws {
        if stalling.withLock({ $0 }) { gate.wait() }
        try base.apply(transaction, expectingGeneration: generation)
    }
    func check(_ transaction: Transaction) throws { try base.check(transaction) }
    func generation() throws -> UInt32 { base.generation() }
    func events(family: Family, table: String) throws -> KernelEvents { base.events(family: family, table: table) }
}

/// A datagram socket standing in for systemd's `$NOTIFY_SOCKET` (abstract namespace).
final class NotifySocket {
    let fd: Int32
    let name = "zw-watchdog-\(UInt64.random(in: 0...UInt64.max))"

    init() throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard fd >= 0, rc == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit { close(fd) }

    /// Every message received so far.
    func drain() -> [String] {
        var out: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return out }
            out.append(String(decoding: buffer[..<n], as: UTF8.self))
        }
    }
}

/// `WATCHDOG=1` is sent only while the reconciler answers: a reconciler stuck in a kernel
/// call lets systemd's watchdog period lapse (and systemd restart the daemon).
struct WatchdogTests {
    static let policy = """
        zones:
          web: {members: [192.0.2.10]}
          db: {members: [198.51.100.20]}
        allow:
          - {from: web, to: db, ports: [tcp/5432]}

        """

    @Test func pingsStopWhileTheReconcilerIsStuckInTheKernel() async throws {
        let dir = NSTemporaryDirectory() + "zw-watchdog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.policy.write(toFile: dir + "/policies/p.yaml", atomically: true, encoding: .utf8)
        let notify = try NotifySocket()
        let kernel = StallingKernel()
        var config = DaemonConfiguration(policyDirectory: dir + "/policies", stateFile: dir + "/state.json",
                                         resyncInterval: .seconds(600), removeOnExit: false, metricsAddress: nil)
        // A 200 ms watchdog period: a ping every 100 ms while the reconciler answers.
        config.notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + notify.name, "WATCHDOG_USEC": "200000"])
        let daemon = ZonewallDaemon(kernel: kernel, configuration: config, logger: Logger(label: "t"))
        let group = ServiceGroup(configuration: .init(services: [.init(service: daemon)], logger: Logger(label: "t")))
        let running = Task { try await group.run() }

        func pings(during window: Duration) async throws -> Int {
            _ = notify.drain()
            try await Task.sleep(for: window)
            return notify.drain().filter { $0.contains("WATCHDOG=1") }.count
        }
        /// Pings until `count` have come, or `limit` passed: one every 100 ms while the reconciler
        /// answers, but with the whole suite on 2 busy CPUs a fixed 3 s window has seen only 2.
        func pings(reaching count: Int, within limit: Duration) async throws -> Int {
            _ = notify.drain()
            var seen = 0
            let deadline = ContinuousClock.now + limit
            while seen < count && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                seen += notify.drain().filter { $0.contains("WATCHDOG=1") }.count
            }
            return seen
        }
        var ready = false
        for _ in 0..<500 where !ready {
            ready = notify.drain().contains { $0.contains("READY=1") }
            if !ready { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(ready)
        let alive = try await pings(reaching: 3, within: .seconds(15))
        #expect(alive >= 3, "pings while the reconciler answers: \(alive)")

        // An edit whose apply hangs in the kernel: the reconciler stops answering.
        kernel.stalling.withLock { $0 = true }
        try Self.policy.replacingOccurrences(of: "tcp/5432", with: "tcp/5433").write(toFile: dir + "/policies/p.yaml", atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(500))  // the edit reaches the reconciler, whose apply now waits
        let stuck = try await pings(during: .seconds(1))
        #expect(stuck == 0, "pings while stuck: \(stuck)")

        kernel.stalling.withLock { $0 = false }
        kernel.gate.signal()
        let again = try await pings(reaching: 3, within: .seconds(15))
        #expect(again >= 3, "pings once the kernel call returned: \(again)")
        #expect(kernel.base.table.map { NftText.render($0) }?.contains("5433") == true)

        await group.triggerGracefulShutdown()
        try await running.value
    }
}
