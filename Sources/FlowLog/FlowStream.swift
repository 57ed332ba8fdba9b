import CNetfilterLog
import Foundation
import Glibc
import NetworkNamespace

/// The daemon's flow log, shared over a local unix socket that only root can open: the socket
/// file is mode 0600, and each peer's uid is checked with `SO_PEERCRED`.
///
/// Protocol: the client sends one line, `since EPOCH_SECONDS` or `since -`; the server replays
/// the packets it kept since then (the last hour, at most `capacity`), then streams new ones,
/// one `LoggedPacket` JSON object a line.
public final class FlowStreamServer: @unchecked Sendable {
    /// The default socket path.
    public static let defaultPath = "/run/zonewall/flowlog.sock"

    /// The socket of the daemon enforcing in a network namespace: `flowlog-ns-DEV-INODE.sock`,
    /// named by the namespace's identity, so that daemons of several namespaces never share one
    /// however they are started (`--netns NAME`, a path, `ip netns exec NAME`, the host's own), and
    /// `zonewall log` finds it by any spelling. `defaultPath` where the namespace cannot be examined.
    public static func defaultPath(netns: String?) -> String {
        NetworkNamespace.identity(of: netns).map { "/run/zonewall/flowlog-ns-\($0).sock" } ?? defaultPath
    }

    /// The socket file.
    public let path: String
    let capacity: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var clients: [Client] = []

    /// One reader: its own serial queue does the (blocking) sends, so a slow reader never
    /// slows the daemon; one that falls 100,000 lines behind is disconnected.
    final class Client: @unchecked Sendable {
        let fd: Int32
        let queue: DispatchQueue
        private let lock = NSLock()
        private var backlog = 0
        private var dead = false

        init(fd: Int32) {
            self.fd = fd
            queue = DispatchQueue(label: "zonewall-flowlog-client-\(fd)")
        }

        /// Queues a line; false when the client is gone or too far behind.
        func send(_ line: [UInt8]) -> Bool {
            let ok: Bool = lock.withLock {
                if dead || backlog >= 100_000 { dead = true; return false }
                backlog += 1
                return true
            }
            guard ok else { return false }
            queue.async { [self] in
                let sent = line.withUnsafeBytes { buf -> Bool in
                    var off = 0
                    while off < buf.count {
                        let n = Glibc.send(fd, buf.baseAddress! + off, buf.count - off, Int32(MSG_NOSIGNAL))
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { return false }
                        off += n
                    }
                    return true
                }
                lock.withLock {
                    backlog -= 1
                    if !sent { dead = true }
                }
            }
            return true
        }

        func close() {
            lock.withLock { dead = true }
            shutdown(fd, Int32(SHUT_RDWR))
            queue.async { [fd] in _ = Glibc.close(fd) }
        }
    }
    private var recent: [LoggedPacket] = []
    private var recentStart = 0
    private var closed = false
    /// Clients refused because they were not root.
    public private(set) var refused = 0

    /// Listens on `path` (replacing a stale socket file).
    public init(path: String = FlowStreamServer.defaultPath, capacity: Int = 10_000) throws {
        self.path = path
        self.capacity = capacity
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FlowLogError.system("creating unix socket") }
        // Created with no permission for anyone else from the first moment, not chmod'ed after.
        let old = umask(0o177)
        let rc = Self.withAddress(path) { bind(fd, $0, $1) }
        umask(old)
        guard rc == 0 else {
            let e = FlowLogError.system("binding \(path)")
            Glibc.close(fd)
            throw e
        }
        guard listen(fd, 16) == 0 else {
            let e = FlowLogError.system("listening on \(path)")
            Glibc.close(fd)
            throw e
        }
        listenFD = fd
        let t = Thread { [self] in acceptLoop() }
        t.name = "zonewall-flowlog-accept"
        t.start()
    }

    /// Stops accepting, disconnects every client and removes the socket file.
    public func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            for c in clients { c.close() }
            clients = []
        }
        shutdown(listenFD, Int32(SHUT_RDWR))
        Glibc.close(listenFD)
        unlink(path)
    }

    /// Keeps the packet for replay and sends it to every client; a client that cannot keep
    /// up (its socket buffer full) is disconnected rather than slowing the daemon down.
    public func publish(_ p: LoggedPacket) {
        let line = Array((Self.json(p) + "\n").utf8)
        lock.withLock {
            if recent.count < capacity { recent.append(p) } else {
                recent[recentStart] = p
                recentStart = (recentStart + 1) % capacity
            }
            clients.removeAll { c in
                if c.send(line) { return false }
                c.close()
                return true
            }
        }
    }

    static func json(_ p: LoggedPacket) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: e.encode(p), as: UTF8.self)) ?? "{}"
    }

    private func acceptLoop() {
        while true {
            let c = accept(listenFD, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            var uid: UInt32 = 0
            guard zwlog_peer_uid(c, &uid) == 0, uid == 0 || uid == geteuid() else {
                lock.withLock { refused += 1 }
                Glibc.close(c)
                continue
            }
            let since = Self.readSince(c)
            lock.withLock {
                guard !closed else { Glibc.close(c); return }
                let kept = Array(recent[recentStart...] + recent[..<recentStart])
                var ok = true
                if let since {
                    for p in kept where p.time >= since {
                        let line = Array((Self.json(p) + "\n").utf8)
                        if line.withUnsafeBytes({ send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) != line.count { ok = false; break }
                    }
                }
                if ok { clients.append(Client(fd: c)) } else { Glibc.close(c) }
            }
        }
    }

    /// The client's `since` line (a second at most): nil for `-` or anything unreadable.
    static func readSince(_ fd: Int32) -> Date? {
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 64, recv(fd, &byte, 1, 0) == 1, byte != 10 { line.append(byte) }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        guard words.count == 2, words[0] == "since", let s = Double(words[1]) else { return nil }
        return Date(timeIntervalSince1970: s)
    }

    static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: addr.sun_path) - 1))
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}

/// Reads the daemon's flow log stream (`FlowStreamServer`) as a packet source.
///
/// When the daemon closes the stream (it stopped or restarts), the client connects again as soon
/// as the socket answers, for up to `reconnectWindow`, asking for what the new daemon kept since
/// the last packet read: a follower left running for days outlives a daemon restart. Packets
/// logged while no daemon ran are lost, and `notice` says so.
public final class FlowStreamClient: PacketSource, @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    private var fd: Int32
    private var stopRequested = false
    private let stream: AsyncThrowingStream<LoggedPacket, any Error>
    /// The daemon counts losses; its stream itself loses nothing.
    public var lost: Int { 0 }

    /// Connects; throws when no daemon listens (or the caller may not open the socket).
    /// `notice` hears of a lost and a regained stream.
    public init(path: String = FlowStreamServer.defaultPath, since: Date?, reconnectWindow: Duration = .seconds(60),
                notice: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.path = path
        fd = try Self.connect(path, since: since)
        let (s, c) = AsyncThrowingStream<LoggedPacket, any Error>.makeStream()
        stream = s
        let t = Thread { [self] in
            var last = since
            while true {
                last = read(from: lock.withLock { fd }, into: c) ?? last
                if lock.withLock({ stopRequested }) { return c.finish() }
                notice("the daemon closed the flow log stream; connecting again (packets logged meanwhile are lost)")
                guard let again = reconnect(since: last, within: reconnectWindow) else {
                    if lock.withLock({ stopRequested }) { return c.finish() }
                    return c.finish(throwing: FlowLogError("the daemon closed the flow log stream and did not come back within \(reconnectWindow)"))
                }
                let stopped = lock.withLock {
                    Glibc.close(fd)
                    fd = again
                    return stopRequested
                }
                if stopped { return c.finish() }
                notice("connected to the daemon's flow log again")
            }
        }
        t.name = "zonewall-flowlog-client"
        t.start()
    }

    private static func connect(_ path: String, since: Date?) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FlowLogError.system("creating unix socket") }
        guard FlowStreamServer.withAddress(path, { Glibc.connect(fd, $0, $1) }) == 0 else {
            let e = FlowLogError.system("connecting to \(path)")
            Glibc.close(fd)
            throw e
        }
        let hello = "since \(since.map { String($0.timeIntervalSince1970) } ?? "-")\n"
        _ = hello.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        return fd
    }

    /// Reads packets until the stream ends; the time of the last one, if any.
    private func read(from fd: Int32, into c: AsyncThrowingStream<LoggedPacket, any Error>.Continuation) -> Date? {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let decoder = JSONDecoder()
        var last: Date?
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return last }
            pending += buffer[..<n]
            while let nl = pending.firstIndex(of: 10) {
                let line = pending[..<nl]
                if let p = try? decoder.decode(LoggedPacket.self, from: Data(line)) {
                    c.yield(p)
                    last = p.time
                }
                pending.removeSubrange(...nl)
            }
        }
    }

    /// A new connection, tried every 200 ms until `window` passes or `stop()`.
    private func reconnect(since: Date?, within window: Duration) -> Int32? {
        let deadline = ContinuousClock.now + window
        while ContinuousClock.now < deadline, !lock.withLock({ stopRequested }) {
            // Strictly after the last packet read: the kept ones at that very time were read.
            if let fd = try? Self.connect(path, since: since.map { $0.addingTimeInterval(0.000_001) }) { return fd }
            usleep(200_000)
        }
        return nil
    }

    /// The packets as the daemon sends them.
    public func packets() -> AsyncThrowingStream<LoggedPacket, any Error> { stream }

    /// Ends the stream (the reader sees its end without an error).
    public func stop() {
        lock.withLock {
            stopRequested = true
            shutdown(fd, Int32(SHUT_RDWR))
        }
    }

    deinit { Glibc.close(fd) }
}
