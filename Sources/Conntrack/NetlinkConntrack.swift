import CConntrack
import Glibc
import NetworkNamespace
import Revocation
import Synchronization
import ZonePolicy

/// A failed ctnetlink call: the operation and the errno.
public struct ConntrackError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public var description: String { "\(operation): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The kernel's conntrack table over ctnetlink, optionally inside a named network namespace.
///
/// Dumps and deletes go over a libmnl socket: dumps are decoded by `decodeConntrackMessages`
/// (the decoder the `conntrack` fuzz target runs), delete requests get their attributes from
/// libnetfilter_conntrack's `nfct_nlmsg_build`. libnetfilter_conntrack's own handle creates
/// entries (`create`, for tests and the benchmark).
///
/// Both are opened inside the namespace (like `NetlinkSocket.open(inNamespace:)`): a netlink
/// socket keeps the namespace it was created in.
public final class NetlinkConntrack: ConntrackTable, @unchecked Sendable {
    /// The `nfct_open` handle; calls on it are serialised by `lock`.
    private let handle: OpaquePointer
    /// A libmnl socket for dumps and batched deletes. It is not the `nfct` handle's socket: raw
    /// reads there raise the kernel's dump message size past the buffer libnetfilter_conntrack
    /// reads dumps with, and truncate them.
    private let socket: OpaquePointer
    /// The sequence number of the last dump request.
    private var seq: UInt32 = 0
    private let local: Set<LocalAddress>
    private let lock = Mutex(())

    /// Opens ctnetlink in the calling thread's namespace, or in `/run/netns/NAME` (`nfct_open`).
    public init(namespace: String? = nil) throws(ConntrackError) {
        let opened = try Self.inNamespace(namespace)
        handle = opened.handle
        socket = opened.deleter
        local = opened.local
    }

    deinit {
        nfct_close(handle)
        mnl_socket_close(socket)
    }

    public func localAddresses() throws -> Set<LocalAddress> { local }

    /// Dumps both families (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` and `AF_UNSPEC`, on the
    /// module's libmnl socket), decoding each datagram as it arrives with
    /// `decodeConntrackMessages`, the decoder the fuzz target runs, so that the table is never
    /// held whole. libmnl's `mnl_cb_run` checks each reply's sequence number and port id and
    /// finds the dump's end or error.
    ///
    /// A dump walks every bucket of the kernel's conntrack hash, which all namespaces share
    /// (262,144 buckets here, about 12 ms), however few entries this namespace holds. So the
    /// table's count is asked first (`entryCount`), and an empty table is not dumped.
    public func scan(_ body: (ConntrackEntry) -> Void) throws {
        try lock.withLock { _ throws(ConntrackError) in
            if (try? countEntries()) == 0 { return }
            let seq = try send(IPCTNL_MSG_CT_GET, flags: NLM_F_REQUEST | NLM_F_DUMP, "requesting a dump of the conntrack table")
            let portID = mnl_socket_get_portid(socket)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let datagram = try receive(into: &buffer, "reading the conntrack table dump")
                // Checked first (sequence, port id, errors), so that no entry of a stray reply is passed on.
                let rc = datagram.withUnsafeBytes { mnl_cb_run($0.baseAddress, $0.count, seq, portID, nil, nil) }
                if rc < 0 { throw ConntrackError(operation: "dumping the conntrack table", errno: errno) }
                let entries: [ConntrackEntry]
                do { entries = try decodeConntrackMessages(datagram) } catch {
                    throw ConntrackError(operation: "reading the conntrack table dump: \(error)", errno: EPROTO)
                }
                for e in entries { body(e) }
                if rc == MNL_CB_STOP { return }
            }
        }
    }

    /// How many entries this namespace's table holds: `IPCTNL_MSG_CT_GET_STATS`, whose reply
    /// carries `CTA_STATS_GLOBAL_ENTRIES` (the namespace's count, not the host's).
    public func entryCount() throws -> Int {
        try lock.withLock { _ throws(ConntrackError) in try countEntries() }
    }

    /// `entryCount`, with `lock` held.
    private func countEntries() throws(ConntrackError) -> Int {
        let what = "reading the conntrack table's statistics"
        let seq = try send(IPCTNL_MSG_CT_GET_STATS, flags: NLM_F_REQUEST, "asking for the conntrack table's statistics")
        var buffer = [UInt8](repeating: 0, count: 8192)
        let reply = try receive(into: &buffer, what)
        // The sequence, the port id and an error reply are checked as for a dump.
        guard reply.withUnsafeBytes({ mnl_cb_run($0.baseAddress, $0.count, seq, mnl_socket_get_portid(socket), nil, nil) }) >= 0 else {
            throw ConntrackError(operation: what, errno: errno)
        }
        let count: Int?
        do { count = try decodeConntrackEntryCount(reply) } catch {
            throw ConntrackError(operation: "\(what): \(error)", errno: EPROTO)
        }
        guard let count else { throw ConntrackError(operation: "\(what): no entry count", errno: EPROTO) }
        return count
    }

    /// Sends a ctnetlink request of both families with no attributes; returns its sequence number.
    private func send(_ type: cntl_msg_types, flags: Int32, _ what: String) throws(ConntrackError) -> UInt32 {
        var request = [UInt8](repeating: 0, count: 64)
        seq &+= 1
        let seq = self.seq
        let length = request.withUnsafeMutableBytes { raw -> Int in
            let nlh = mnl_nlmsg_put_header(raw.baseAddress!)!
            nlh.pointee.nlmsg_type = UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(type.rawValue)
            nlh.pointee.nlmsg_flags = UInt16(flags)
            nlh.pointee.nlmsg_seq = seq
            let nfg = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<nfgenmsg>.size)!.assumingMemoryBound(to: nfgenmsg.self)
            nfg.pointee.nfgen_family = UInt8(AF_UNSPEC)
            nfg.pointee.version = UInt8(NFNETLINK_V0)
            return Int(nlh.pointee.nlmsg_len)
        }
        guard request.withUnsafeBytes({ mnl_socket_sendto(socket, $0.baseAddress, length) }) == length else {
            throw ConntrackError(operation: what, errno: errno)
        }
        return seq
    }

    /// The next datagram on the socket, retried on EINTR.
    private func receive(into buffer: inout [UInt8], _ what: String) throws(ConntrackError) -> [UInt8] {
        while true {
            let n = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if n >= 0 { return Array(buffer[0..<n]) }
            if errno != EINTR { throw ConntrackError(operation: what, errno: errno) }
        }
    }

    /// Deletes each entry by its original tuple, zone and id; ENOENT (already gone, or the id
    /// now belongs to nobody) is not an error.
    ///
    /// The delete requests (`IPCTNL_MSG_CT_DELETE`, attributes by `nfct_nlmsg_build`) go
    /// `deletesPerDatagram` to a datagram: ctnetlink handles every message of a datagram in
    /// the one `sendmsg` and queues an ack for each, so 70,000 deletes cost 70 system calls
    /// instead of 140,000 (`nfct_query` sends one and waits for its ack).
    public func delete(_ entries: [ConntrackEntry]) throws -> Int {
        try lock.withLock { _ throws(ConntrackError) -> Int in
            let fd = mnl_socket_get_fd(socket)
            // Each queued ack holds about 1 KiB of receive buffer.
            var size = Int32(Self.deletesPerDatagram * 2048)
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            }
            var deleted = 0
            var start = 0
            while start < entries.count {
                let chunk = entries[start..<min(start + Self.deletesPerDatagram, entries.count)]
                deleted += try deleteDatagram(fd, chunk, firstSeq: UInt32(truncatingIfNeeded: start) &+ 1)
                start = chunk.endIndex
            }
            return deleted
        }
    }

    /// Delete requests in one datagram.
    static let deletesPerDatagram = 1024

    private func deleteDatagram(_ fd: Int32, _ chunk: ArraySlice<ConntrackEntry>, firstSeq: UInt32) throws(ConntrackError) -> Int {
        var buffer = [UInt8](repeating: 0, count: chunk.count * 512)
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            var offset = 0
            for (i, e) in chunk.enumerated() {
                let nlh = mnl_nlmsg_put_header(raw.baseAddress! + offset)!
                nlh.pointee.nlmsg_type = UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(IPCTNL_MSG_CT_DELETE.rawValue)
                nlh.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_ACK)
                nlh.pointee.nlmsg_seq = firstSeq &+ UInt32(i)
                let nfg = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<nfgenmsg>.size)!.assumingMemoryBound(to: nfgenmsg.self)
                nfg.pointee.nfgen_family = UInt8(e.family == .ipv4 ? AF_INET : AF_INET6)
                nfg.pointee.version = UInt8(NFNETLINK_V0)
                nfg.pointee.res_id = 0
                guard let ct = nfct_new() else { fatalError("nfct_new: out of memory") }
                defer { nfct_destroy(ct) }
                Self.setTuple(ct, e)
                if e.id != 0 { nfct_set_attr_u32(ct, ATTR_ID, e.id) }
                _ = nfct_nlmsg_build(nlh, ct)
                offset += Int(nlh.pointee.nlmsg_len)
                precondition(offset <= raw.count, "conntrack delete request larger than 512 bytes")
            }
            return offset
        }
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = withUnsafePointer(to: &kernel) { address in
            address.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                buffer.withUnsafeBytes { sendto(fd, $0.baseAddress, length, 0, sa, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
            }
        }
        guard sent == length else {
            throw ConntrackError(operation: "sending \(chunk.count) conntrack delete requests", errno: errno)
        }
        // One ack per request, already queued: the kernel handled them inside sendto.
        var acked = 0, deleted = 0
        var failure: (ConntrackEntry, Int32)?
        var reply = [UInt8](repeating: 0, count: 1 << 16)
        while acked < chunk.count {
            // The acks are queued before sendto returns; the wait only guards against lost ones.
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 5000)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else {
                throw ConntrackError(operation: "waiting for the acks of \(chunk.count) conntrack delete requests (\(acked) came)",
                                     errno: ready == 0 ? ETIMEDOUT : errno)
            }
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConntrackError(operation: "reading the acks of \(chunk.count) conntrack delete requests", errno: errno)
            }
            reply.withUnsafeBytes { raw in
                var left = Int32(n)
                var nlh = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
                while mnl_nlmsg_ok(nlh, left) {
                    if nlh.pointee.nlmsg_type == UInt16(NLMSG_ERROR),
                       nlh.pointee.nlmsg_len >= UInt32(MemoryLayout<nlmsghdr>.size + MemoryLayout<Int32>.size) {
                        let seq = nlh.pointee.nlmsg_seq &- firstSeq
                        if seq < UInt32(chunk.count) {
                            acked += 1
                            let code = -mnl_nlmsg_get_payload(nlh)!.load(as: Int32.self)
                            if code == 0 {
                                deleted += 1
                            } else if code != ENOENT, failure == nil {
                                failure = (chunk[chunk.startIndex + Int(seq)], code)
                            }
                        }
                    }
                    nlh = UnsafePointer(mnl_nlmsg_next(nlh, &left)!)
                }
            }
        }
        if let (e, code) = failure {
            throw ConntrackError(operation: "deleting conntrack entry \(e.sourceText) → \(e.destinationText)", errno: code)
        }
        return deleted
    }

    /// Creates an entry (`nfct_query(NFCT_Q_CREATE)`), established and lasting `timeout`
    /// seconds: for tests and the benchmark, which need large tables without real flows.
    public func create(_ e: ConntrackEntry, timeout: UInt32 = 600) throws {
        try lock.withLock { _ in
            guard let ct = nfct_new() else { fatalError("nfct_new: out of memory") }
            defer { nfct_destroy(ct) }
            Self.setTuple(ct, e)
            // The reply tuple mirrors the original one (no NAT).
            nfct_setobjopt(ct, UInt32(NFCT_SOPT_SETUP_REPLY))
            nfct_set_attr_u32(ct, ATTR_TIMEOUT, timeout)
            if e.proto == 6 { nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3 /* TCP_CONNTRACK_ESTABLISHED */) }
            guard nfct_query(handle, NFCT_Q_CREATE, UnsafeRawPointer(ct)) == 0 else {
                throw ConntrackError(operation: "creating conntrack entry \(e.sourceText) → \(e.destinationText) (nfct_query NFCT_Q_CREATE)",
                                     errno: errno)
            }
        }
    }

    private static func setTuple(_ ct: OpaquePointer, _ e: ConntrackEntry) {
        nfct_set_attr_u8(ct, ATTR_L3PROTO, UInt8(e.family == .ipv4 ? AF_INET : AF_INET6))
        if e.family == .ipv4 {
            nfct_set_attr_u32(ct, ATTR_IPV4_SRC, UInt32(truncatingIfNeeded: e.source).bigEndian)
            nfct_set_attr_u32(ct, ATTR_IPV4_DST, UInt32(truncatingIfNeeded: e.destination).bigEndian)
        } else {
            withUnsafeBytes(of: e.source.bigEndian) { nfct_set_attr(ct, ATTR_IPV6_SRC, $0.baseAddress) }
            withUnsafeBytes(of: e.destination.bigEndian) { nfct_set_attr(ct, ATTR_IPV6_DST, $0.baseAddress) }
        }
        nfct_set_attr_u8(ct, ATTR_L4PROTO, e.proto)
        if e.isICMP {
            nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, e.icmpType)
            nfct_set_attr_u8(ct, ATTR_ICMP_CODE, e.icmpCode)
            nfct_set_attr_u16(ct, ATTR_ICMP_ID, e.icmpID.bigEndian)
        } else if e.hasPorts {
            nfct_set_attr_u16(ct, ATTR_PORT_SRC, e.sourcePort.bigEndian)
            nfct_set_attr_u16(ct, ATTR_PORT_DST, e.destinationPort.bigEndian)
        }
        if e.zone != 0 { nfct_set_attr_u16(ct, ATTR_ZONE, e.zone) }
    }

    /// The addresses of this thread's namespace's interfaces (`getifaddrs`).
    private static func readLocalAddresses() -> Set<LocalAddress> {
        var out: Set<LocalAddress> = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return out }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr else { continue }
            switch Int32(sa.pointee.sa_family) {
            case AF_INET:
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    _ = out.insert(LocalAddress(family: .ipv4, address: UInt128(UInt32(bigEndian: $0.pointee.sin_addr.s_addr))))
                }
            case AF_INET6:
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s in
                    var v: UInt128 = 0
                    withUnsafeMutableBytes(of: &v) { dst in withUnsafeBytes(of: s.pointee.sin6_addr) { dst.copyMemory(from: $0) } }
                    out.insert(LocalAddress(family: .ipv6, address: UInt128(bigEndian: v)))
                }
            default: break
            }
        }
        return out
    }

    private static func openHere() throws(ConntrackError) -> Opened {
        guard let h = nfct_open(UInt8(CONNTRACK), 0) else { throw ConntrackError(operation: "opening ctnetlink (nfct_open)", errno: errno) }
        guard let d = mnl_socket_open(NETLINK_NETFILTER), mnl_socket_bind(d, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            nfct_close(h)
            throw ConntrackError(operation: "opening a netlink socket for conntrack deletes (mnl_socket_open)", errno: e)
        }
        return Opened(handle: h, deleter: d, local: readLocalAddresses())
    }

    private struct Opened: @unchecked Sendable {
        var handle: OpaquePointer
        var deleter: OpaquePointer
        var local: Set<LocalAddress>
    }

    /// Opens the handle inside `/run/netns/NAME` (or here when nil), on a throwaway thread
    /// (`NetworkNamespace.run`).
    private static func inNamespace(_ name: String?) throws(ConntrackError) -> Opened {
        guard let name else { return try openHere() }
        switch NetworkNamespace(name).run({ Result { () throws(ConntrackError) in try NetlinkConntrack.openHere() } }) {
        case .success(let opened): return try opened.get()
        case .failure(let e): throw ConntrackError(operation: e.operation, errno: e.errno)
        }
    }
}
