import CNetfilter
import Glibc
import Ruleset
import Synchronization

/// Reads nftables change notifications on a thread of its own and feeds them to a
/// `KernelEvents` subscription.
///
/// The reader owns its `NetlinkSocket` (subscribed to `NFNLGRP_NFTABLES`) and is owned by
/// its thread alone, so the socket is closed exactly once: when the thread ends. The thread
/// blocks in `poll` on the socket and on a wake pipe; the subscription's termination (the
/// consumer cancelled, called `cancel()`, or dropped the sequence) writes to the pipe.
final class NetlinkEventReader: @unchecked Sendable {
    /// How many readers exist: lets tests check that a subscription really stops.
    static let live = Atomic<Int>(0)

    private let socket: NetlinkSocket
    private let wake: WakePipe
    private let continuation: KernelEvents.Continuation
    private var decoder: ChangeNotificationDecoder
    private let committer: Committer
    private let beforeReading: (@Sendable () -> Void)?

    private init(socket: NetlinkSocket, wake: WakePipe, continuation: KernelEvents.Continuation,
                 decoder: ChangeNotificationDecoder, committer: Committer, beforeReading: (@Sendable () -> Void)?) {
        self.beforeReading = beforeReading
        self.socket = socket
        self.wake = wake
        self.continuation = continuation
        self.decoder = decoder
        self.committer = committer
        Self.live.add(1, ordering: .relaxed)
    }

    deinit { Self.live.subtract(1, ordering: .relaxed) }

    /// Subscribes `socket` (whose ownership passes to the reader) and starts reading.
    ///
    /// Bursts (a replace of a table with many elements announces every element) queue in the
    /// socket's `receiveBuffer` while the reader catches up; beyond it the kernel drops
    /// notifications and reports `ENOBUFS`, i.e. `.overflow`.
    /// Commits sent on `ownPortID` are reported with this process's pid. `beforeReading`
    /// runs on the reader thread first (tests hold the reader back to fill the socket).
    static func start(_ socket: consuming NetlinkSocket, family: Family, table: String, ownPortID: UInt32?,
                      receiveBuffer: Int = 32 << 20,
                      beforeReading: (@Sendable () -> Void)? = nil) throws(NetfilterError) -> KernelEvents {
        socket.setReceiveBuffer(receiveBuffer)
        try socket.addMembership(UInt32(NFNLGRP_NFTABLES.rawValue), what: "nftables notifications (NFNLGRP_NFTABLES)")
        let wake = try WakePipe()
        let (events, continuation) = KernelEvents.makeEvents()
        let reader = NetlinkEventReader(socket: socket, wake: wake, continuation: continuation,
                                        decoder: ChangeNotificationDecoder(family: family, table: table),
                                        committer: Committer(ownPortID: ownPortID), beforeReading: beforeReading)
        continuation.onTermination { wake.signal() }

        let context = Unmanaged.passRetained(reader).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<NetlinkEventReader>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<NetlinkEventReader>.fromOpaque(context).release()
            throw NetfilterError(operation: "starting the nftables notification reader thread", errno: rc)
        }
        pthread_detach(thread)
        return events
    }

    private func run() {
        beforeReading?()
        while true {
            var fds = [pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return continuation.finish(throwing: NetfilterError.system("waiting for nftables notifications"))
            }
            if fds[1].revents != 0 { return continuation.finish() }
            do throws(NetfilterError) {
                while let datagram = try socket.receive(wait: false) {
                    for m in NetlinkMessage.split(datagram[...]) {
                        guard let c = decoder.consume(m) else { continue }
                        continuation.yield(.changed(generation: c.generation, pid: committer.pid(of: c),
                                                    processName: c.processName, touchedTable: c.touchedTable,
                                                    onlyElementsOf: c.onlyElementsOf))
                    }
                }
            } catch where error.errno == ENOBUFS {
                // The socket's queue overflowed: some notifications are gone for good.
                decoder.lost()
                continuation.yield(.overflow)
            } catch {
                return continuation.finish(throwing: NetfilterError(
                    operation: "reading nftables notifications", errno: error.errno, detail: error.detail))
            }
        }
    }
}

/// A pipe whose only use is to wake a thread blocked in `poll`; both ends are closed when the
/// last holder (the reader, or the termination handler) lets go, so `signal` never writes to
/// a closed or reused descriptor.
final class WakePipe: Sendable {
    let readEnd: Int32
    private let writeEnd: Int32

    init() throws(NetfilterError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw .system("creating the notification reader's wake pipe") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC); _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Makes the read end readable; a full pipe is already readable, so failures do not matter.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }
}
