import CSockDiag
import Glibc
import HostIdentity
import NetworkNamespace
import Revocation
import Synchronization
import ZonePolicy

/// A failed sock_diag call: the operation and the errno.
public struct SockDiagError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public var description: String { "\(operation): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The socket table of a network namespace over sock_diag (`NETLINK_SOCK_DIAG`, inet_diag),
/// on a libmnl socket opened inside the namespace: a netlink socket keeps the namespace it was
/// created in, and sock_diag answers for that namespace's sockets only.
///
/// `sockets()` dumps TCP and UDP of both families (`SOCK_DIAG_BY_FAMILY` with `NLM_F_DUMP`),
/// every state but `TIME_WAIT` and `NEW_SYN_RECV` (those are not full sockets and carry no
/// owner), decodes each datagram with `decodeSockDiagMessages` after libmnl's `mnl_cb_run`
/// has checked its sequence number, port id and errors, then resolves each socket's cgroup id
/// (`INET_DIAG_CGROUP_ID`, kernel 5.7+) to a path with one walk of the cgroup2 hierarchy.
public final class NetlinkSockets: SocketTable, @unchecked Sendable {
    private let socket: OpaquePointer
    private let cgroups: CgroupWatcher?
    private var seq: UInt32 = 0
    private let lock = Mutex(())

    /// Opens sock_diag in the calling thread's namespace, or in `/run/netns/NAME`. `cgroupRoot`
    /// is the cgroup2 mount point (found in `/proc/self/mountinfo` when nil); without one,
    /// sockets have no cgroup path.
    public init(namespace: String? = nil, cgroupRoot: String? = nil) throws(SockDiagError) {
        socket = try Self.inNamespace(namespace)
        cgroups = cgroupRoot.map { CgroupWatcher(root: $0) } ?? CgroupWatcher.current()
    }

    deinit { mnl_socket_close(socket) }

    /// States to dump: all but `TCP_TIME_WAIT` (6) and `TCP_NEW_SYN_RECV` (12).
    static let states: UInt32 = ~(1 << 6 | 1 << 12)

    public func sockets() throws -> [LocalSocket] {
        var all: [LocalSocket] = []
        try lock.withLock { _ throws(SockDiagError) in
            for family in [AF_INET, AF_INET6] {
                for proto in [IPPROTO_TCP, IPPROTO_UDP] {
                    try dump(family: UInt8(family), proto: UInt8(proto)) { all.append($0) }
                }
            }
        }
        guard let cgroups else { return all }
        let paths = cgroups.paths(of: Set(all.compactMap(\.cgroupID)))
        for i in all.indices { all[i].cgroupPath = all[i].cgroupID.flatMap { paths[$0] } }
        return all
    }

    /// Reads whatever an earlier, failed dump left queued, so that the next dump starts clean.
    private func drain() {
        let fd = mnl_socket_get_fd(socket)
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while scratch.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {}
    }

    private func dump(family: UInt8, proto: UInt8, _ body: (LocalSocket) -> Void) throws(SockDiagError) {
        drain()
        seq &+= 1
        let seq = self.seq
        let what = "\(family == UInt8(AF_INET) ? "IPv4" : "IPv6") \(proto == UInt8(IPPROTO_TCP) ? "TCP" : "UDP") sockets"
        var request = [UInt8](repeating: 0, count: 128)
        let length = request.withUnsafeMutableBytes { raw -> Int in
            let nlh = mnl_nlmsg_put_header(raw.baseAddress!)!
            nlh.pointee.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
            nlh.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
            nlh.pointee.nlmsg_seq = seq
            let req = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<inet_diag_req_v2>.size)!
                .assumingMemoryBound(to: inet_diag_req_v2.self)
            req.pointee.sdiag_family = family
            req.pointee.sdiag_protocol = proto
            req.pointee.idiag_states = Self.states
            return Int(nlh.pointee.nlmsg_len)
        }
        guard request.withUnsafeBytes({ mnl_socket_sendto(socket, $0.baseAddress, length) }) == length else {
            throw SockDiagError(operation: "requesting a dump of the \(what) (sock_diag)", errno: errno)
        }
        let portID = mnl_socket_get_portid(socket)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SockDiagError(operation: "reading the dump of the \(what)", errno: errno)
            }
            let datagram = Array(buffer[0..<n])
            let rc = datagram.withUnsafeBytes { mnl_cb_run($0.baseAddress, $0.count, seq, portID, nil, nil) }
            if rc < 0 {
                // No udp_diag (or no inet_diag) in this kernel: nothing to find there.
                if errno == ENOENT || errno == EOPNOTSUPP { return }
                throw SockDiagError(operation: "dumping the \(what)", errno: errno)
            }
            let sockets: [LocalSocket]
            do { sockets = try decodeSockDiagMessages(datagram, proto: proto) } catch {
                throw SockDiagError(operation: "reading the dump of the \(what): \(error)", errno: EPROTO)
            }
            for s in sockets { body(s) }
            if rc == MNL_CB_STOP { return }
        }
    }

    private static func openHere() throws(SockDiagError) -> OpaquePointer {
        guard let s = mnl_socket_open(NETLINK_SOCK_DIAG) else {
            throw SockDiagError(operation: "opening a sock_diag netlink socket (mnl_socket_open)", errno: errno)
        }
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            mnl_socket_close(s)
            throw SockDiagError(operation: "binding the sock_diag netlink socket", errno: e)
        }
        return s
    }

    /// Opens the socket inside `/run/netns/NAME` (or here when nil), on a throwaway thread
    /// (`NetworkNamespace.run`).
    private static func inNamespace(_ name: String?) throws(SockDiagError) -> OpaquePointer {
        guard let name else { return try openHere() }
        switch NetworkNamespace(name).run({ Result { () throws(SockDiagError) in try NetlinkSockets.openHere() } }) {
        case .success(let opened): return try opened.get()
        case .failure(let e): throw SockDiagError(operation: e.operation, errno: e.errno)
        }
    }
}
