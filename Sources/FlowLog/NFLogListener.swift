import CNetfilterLog
import Foundation
import Glibc
import NetworkNamespace

/// A failure of the flow log's kernel side, naming what failed.
public struct FlowLogError: Error, CustomStringConvertible, Sendable {
    /// What failed, and the system's reason.
    public var description: String

    /// An error with this text.
    public init(_ description: String) { self.description = description }

    static func system(_ what: String, _ code: Int32 = errno) -> FlowLogError {
        FlowLogError("\(what): \(String(cString: strerror(code)))")
    }
}

/// Reads one NFLOG group over netlink, optionally inside a named network namespace: libnetfilter_log
/// binds the group and sets its copy mode (`nflog_open`, `nflog_bind_group`, `nflog_set_mode`);
/// the datagrams are decoded by `decodeNFLogDatagram`, the decoder the `nflog` fuzz target runs.
/// Only one listener can bind a group.
///
/// One dedicated thread enters the namespace, binds, and reads until `stop()`: the namespace
/// is per thread, so no thread that runs other code ever changes namespace.
public final class NFLogListener: PacketSource, @unchecked Sendable {
    /// The NFLOG group bound.
    public let group: UInt16
    /// The network namespace it was bound in, nil for the current one.
    public let namespace: String?
    private let lock = NSLock()
    private var lostCount = 0
    private var lastSeq: UInt32?
    private var stopPipe: (read: Int32, write: Int32) = (-1, -1)
    private var continuation: AsyncThrowingStream<LoggedPacket, any Error>.Continuation?
    private var stream: AsyncThrowingStream<LoggedPacket, any Error>?
    private var thread: Thread?

    /// Whether to wait for a group another listener holds, instead of failing.
    private let waitsForGroup: Bool
    private var bound = false

    /// Binds `group` (in `/run/netns/NAME` when a namespace is given); throws if that fails.
    /// With `waitIfTaken`, a group another listener holds (a `zonewall log` started first) is
    /// not a failure: the listener tries again every `retry` until it gets it or is stopped,
    /// and `isBound` says which.
    public init(group: UInt16, namespace: String? = nil, waitIfTaken: Bool = false, retry: Duration = .seconds(2)) throws {
        self.group = group
        self.namespace = namespace
        self.waitsForGroup = waitIfTaken
        self.retryMilliseconds = Int32(retry.components.seconds * 1000 + retry.components.attoseconds / 1_000_000_000_000_000)
        var fds: [Int32] = [0, 0]
        guard pipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0 else { throw FlowLogError.system("creating a pipe") }
        stopPipe = (fds[0], fds[1])
        let (s, c) = AsyncThrowingStream<LoggedPacket, any Error>.makeStream(bufferingPolicy: .bufferingNewest(65536))
        stream = s
        continuation = c
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var startError: FlowLogError?
        let t = Thread { [self] in
            self.serve { startError = $0; ready.signal() }
        }
        t.name = "zonewall-nflog"
        thread = t
        t.start()
        ready.wait()
        if let startError { throw startError }
    }

    deinit {
        close(stopPipe.read)
        close(stopPipe.write)
    }

    private let retryMilliseconds: Int32

    /// Whether the group is bound: false while another listener holds it (`waitIfTaken`).
    public var isBound: Bool { lock.withLock { bound } }

    /// Packets lost between the kernel and the stream: sequence gaps and a full buffer.
    public var lost: Int { lock.withLock { lostCount } }

    /// The decoded packets, as they arrive.
    public func packets() -> AsyncThrowingStream<LoggedPacket, any Error> { stream! }

    /// Ends the read loop, unbinds the group and finishes the stream.
    public func stop() {
        var one: UInt8 = 1
        _ = write(stopPipe.write, &one, 1)  // the pipe is non-blocking: a second stop is harmless
    }

    /// The listener thread: setup (reported through `started`), then the read loop.
    private func serve(started: (FlowLogError?) -> Void) {
        if let ns = namespace {
            // This thread is the listener's own: it stays in the namespace.
            do throws(NetworkNamespace.EntryError) {
                try NetworkNamespace(ns).enter()
            } catch {
                return started(.system(error.operation, error.errno))
            }
        }
        guard let h = nflog_open() else { return started(.system("opening an NFLOG netlink socket (nflog_open)")) }
        defer { nflog_close(h) }
        // Needed only by kernels before 3.8; harmless after.
        _ = nflog_bind_pf(h, UInt16(AF_INET))
        _ = nflog_bind_pf(h, UInt16(AF_INET6))
        // `started` is called once: at the first failure, or when reading begins, or (waiting for
        // a taken group) at once; a failure after that ends the stream instead.
        var reported = false
        func fail(_ error: FlowLogError) {
            if reported { continuation?.finish(throwing: error) } else { started(error) }
        }
        var gh: OpaquePointer?
        while true {
            gh = nflog_bind_group(h, group)
            if gh != nil { break }
            let e = errno
            // The kernel answers EPERM, not EBUSY, when another socket has the group; with
            // CAP_NET_ADMIN held, that is the only reason left.
            let taken = e == EBUSY || (e == EPERM && geteuid() == 0)
            guard taken && waitsForGroup else {
                return fail(.system("binding NFLOG group \(group) (nflog_bind_group)"
                    + (taken ? ": another listener holds the group (another `zonewall log`, or another program reading it)" : ""), e))
            }
            if !reported { reported = true; started(nil) }
            var wait = pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)
            if poll(&wait, 1, retryMilliseconds) > 0 {
                continuation?.finish()
                return
            }
        }
        guard let gh else { return }
        lock.withLock { bound = true }
        defer {
            nflog_unbind_group(gh)
            lock.withLock { bound = false }
        }
        // Headers are all we decode: 128 bytes hold IPv4/IPv6 and the transport ports.
        guard nflog_set_mode(gh, UInt8(NFULNL_COPY_PACKET), 128) == 0 else { return fail(.system("setting NFLOG copy mode")) }
        _ = nflog_set_flags(gh, UInt16(NFULNL_CFG_F_SEQ))
        // Each packet is sent as the kernel logs it: a follower writes its record at once, and
        // one stopped by SIGINT has seen every packet logged before. (Batching 16 packets or
        // 50 ms held a lone packet back 50 ms.) The log rules' rate limit bounds the wakeups.
        _ = nflog_set_qthresh(gh, 1)
        _ = nflog_set_timeout(gh, 1)
        let fd = nflog_fd(h)
        var size: Int32 = 8 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        if !reported { reported = true; started(nil) }

        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
        loop: while true {
            let n = poll(&fds, 2, -1)
            if n < 0 {
                if errno == EINTR { continue }
                continuation?.finish(throwing: FlowLogError.system("waiting for NFLOG messages"))
                break
            }
            // Stopping: what the kernel has already sent is read and passed on first, so a
            // follower stopped by SIGINT still writes every packet logged before it.
            let stopping = fds[1].revents != 0
            while true {
                let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if got < 0 {
                    if errno == EAGAIN || errno == EINTR { break }
                    if errno == ENOBUFS {
                        // The socket overran: the sequence gap of the next message says how much.
                        continue
                    }
                    continuation?.finish(throwing: FlowLogError.system("reading NFLOG messages"))
                    break loop
                }
                handle(Array(buffer[0..<got]))
            }
            if stopping { break }
        }
        continuation?.finish()
    }

    /// One datagram of packet messages, decoded by `decodeNFLogDatagram` (the decoder the
    /// `nflog` fuzz target runs): sequence check, then each packet to the stream. A datagram
    /// that does not decode is dropped whole; the next sequence number counts its packets lost.
    private func handle(_ datagram: [UInt8]) {
        guard let messages = try? decodeNFLogDatagram(datagram, receivedAt: Date()) else { return }
        for (packet, seq) in messages {
            if let seq {
                lock.withLock {
                    if let last = lastSeq, seq &- last > 1 { lostCount += Int(seq &- last &- 1) }
                    lastSeq = seq
                }
            }
            if let packet, case .dropped = continuation?.yield(packet) { lock.withLock { lostCount += 1 } }
        }
    }
}
