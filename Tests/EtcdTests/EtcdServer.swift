#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Membership
import Synchronization
import Testing

/// A real etcd (Debian's etcd-server) on 127.0.0.1 with random free ports and a temporary data
/// directory; killed and removed when the value goes away, also when a test fails.
final class EtcdServer: @unchecked Sendable {
    static let binary = "/usr/bin/etcd"
    let dataDirectory: String
    let clientPort: Int
    let peerPort: Int
    private var process: Process?

    var endpoint: String { "127.0.0.1:\(clientPort)" }

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            Issue.record("\(Self.binary) is missing: install Debian's etcd-server (scripts/test does)")
            throw CancellationError()
        }
        dataDirectory = NSTemporaryDirectory() + "zw-etcd-\(UUID().uuidString)"
        clientPort = try Self.freePort()
        peerPort = try Self.freePort()
        try start()
    }

    /// A port nothing listens on right now (bound to 0, read back, closed).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Starts (or restarts, on the same data and ports) and waits until it answers.
    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        let client = "http://127.0.0.1:\(clientPort)", peer = "http://127.0.0.1:\(peerPort)"
        p.arguments = ["--name", "zw", "--data-dir", dataDirectory,
                       "--listen-client-urls", client, "--advertise-client-urls", client,
                       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                       "--initial-cluster", "zw=\(peer)", "--log-level", "error"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if Self.answers(clientPort) { return }
            usleep(50_000)
        }
        throw EtcdError.unreachable("etcd did not start on \(endpoint)")
    }

    /// Whether something accepts TCP connections on the port.
    static func answers(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// SIGKILL, and wait for it to be gone.
    func kill() {
        guard let p = process, p.isRunning else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }
}

/// Records a source's events as they come; tests wait on it with a deadline.
final class EventLog: @unchecked Sendable {
    private let events = Mutex<[MemberEvent]>([])
    private var cursor = 0
    private var task: Task<Void, Never>?

    init(_ source: some MemberSource) {
        let stream = source.events()
        task = Task { [weak self] in
            for await e in stream {
                guard let self else { return }
                self.events.withLock { $0.append(e) }
            }
        }
    }

    /// The next event after the last one waited for that `accept` takes; fails the test after
    /// `seconds` in which this task ran.
    ///
    /// Time in which the process was starved does not count: with the whole suite on two busy
    /// processors, other tests once held both of the cooperative pool's threads for longer than
    /// the deadline, and this task woke past it before the source's watch task had run again:
    /// the test failed with the put's event still unread from the watch. A 10 ms sleep that
    /// overran by more than half a second is such a stall, and counts as 10 ms.
    func next(within seconds: Double = 15, _ what: String, where accept: (MemberEvent) -> Bool = { _ in true }) async throws -> MemberEvent {
        var left = seconds
        while true {
            let seen = events.withLock { $0 }
            var found: MemberEvent?
            while found == nil && cursor < seen.count {
                if accept(seen[cursor]) { found = seen[cursor] }
                cursor += 1
            }
            if let found { return found }
            if left <= 0 { break }
            let before = Date()
            try await Task.sleep(for: .milliseconds(10))
            let slept = Date().timeIntervalSince(before)
            left -= slept > 0.5 ? 0.01 : slept
        }
        Issue.record("no event '\(what)' within \(seconds) s; saw \(events.withLock { $0 })")
        throw CancellationError()
    }

    func stop() { task?.cancel() }
    deinit { task?.cancel() }
}
