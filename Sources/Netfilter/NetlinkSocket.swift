import CNetfilter
import Glibc
import NetworkNamespace

/// Owns one bound `NETLINK_NETFILTER` socket (`mnl_socket_open` / `mnl_socket_close`).
///
/// A socket keeps the network namespace it was created in, so opening it inside a named
/// namespace is enough to talk to that namespace's nftables for the socket's whole life.
final class NetlinkSocket {
    private let handle: OpaquePointer
    /// The port id the kernel assigned at bind time (`mnl_socket_get_portid`).
    let portID: UInt32
    private var sendBufferSize = 0
    private var receiveBufferSize = 0
    /// Left uninitialized: `recv` writes what it reads, so pages no datagram reached are never
    /// resident (a daemon holds several sockets).
    private var receiveBuffer = [UInt8](unsafeUninitializedCapacity: 1 << 20) { _, count in count = 1 << 20 }

    private init(handle: OpaquePointer) {
        self.handle = handle
        self.portID = mnl_socket_get_portid(handle)
    }

    deinit { mnl_socket_close(handle) }

    /// The descriptor, for `poll`; it stays owned by this object.
    var fd: Int32 { mnl_socket_get_fd(handle) }

    /// Opens and binds a socket in the calling thread's network namespace.
    static func open() throws(NetfilterError) -> NetlinkSocket {
        guard let h = mnl_socket_open(NETLINK_NETFILTER) else { throw .system("opening netfilter netlink socket") }
        guard mnl_socket_bind(h, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = NetfilterError.system("binding netfilter netlink socket")
            mnl_socket_close(h)
            throw e
        }
        let s = NetlinkSocket(handle: h)
        var one: Int32 = 1
        // Extended acks name the offending attribute; capped acks do not echo our whole message back.
        _ = setsockopt(s.fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(s.fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        s.ensureBuffers(send: 4 << 20, receive: 4 << 20)
        return s
    }

    /// Opens the socket inside the network namespace `/run/netns/NAME` (as `ip netns` names it),
    /// on a throwaway thread (`NetworkNamespace.run`).
    static func open(inNamespace name: String) throws(NetfilterError) -> NetlinkSocket {
        let opened: Result<NetlinkSocket, NetfilterError>
        switch NetworkNamespace(name).run({ Result { () throws(NetfilterError) in try NetlinkSocket.open() } }) {
        case .success(let r): opened = r
        case .failure(let e): throw NetfilterError(operation: e.operation, errno: e.errno)
        }
        return try opened.get()
    }

    /// Grows the kernel buffers so a whole batch fits in one datagram and all its acks can queue.
    ///
    /// `SO_SNDBUFFORCE`/`SO_RCVBUFFORCE` need `CAP_NET_ADMIN`, which nftables needs anyway;
    /// without it the plain options apply (capped by `net.core.[rw]mem_max`).
    func ensureBuffers(send: Int, receive: Int) {
        if send > sendBufferSize {
            var v = Int32(clamping: send)
            if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, socklen_t(MemoryLayout<Int32>.size))
            }
            sendBufferSize = send
        }
        if receive > receiveBufferSize {
            var v = Int32(clamping: receive)
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
            }
            receiveBufferSize = receive
        }
    }

    /// The receive buffer the kernel granted (`SO_RCVBUF`: twice what was asked for, or less
    /// where the plain option was capped by `net.core.rmem_max`).
    var kernelReceiveBufferSize: Int {
        var v: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &length) == 0 else { return 0 }
        return Int(v)
    }

    /// Sets the kernel receive buffer to `bytes`, smaller than now included (the kernel
    /// enforces a minimum of a few KiB).
    func setReceiveBuffer(_ bytes: Int) {
        var v = Int32(clamping: bytes)
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        receiveBufferSize = bytes
    }

    /// Joins a multicast group (`NETLINK_ADD_MEMBERSHIP`), e.g. `NFNLGRP_NFTABLES`.
    func addMembership(_ group: UInt32, what: String) throws(NetfilterError) {
        var g = group
        guard setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
            throw .system("subscribing to \(what)")
        }
    }

    /// Sends `bytes` as one datagram to the kernel (`mnl_socket_sendto`): the kernel processes
    /// a batch only within one `sendmsg`.
    func send(_ bytes: [UInt8], what: String) throws(NetfilterError) {
        let n = bytes.withUnsafeBytes { mnl_socket_sendto(handle, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw .system("sending \(what) (\(bytes.count) bytes)") }
    }

    /// Sends a batch's pages as one datagram: one `sendmsg` with an iovec per page, as nft does
    /// (`mnl_socket_sendto` sends one buffer). Pages beyond `IOV_MAX` are joined into one buffer.
    func send(_ pages: BatchPages, what: String) throws(NetfilterError) {
        guard pages.pageCount <= BatchPages.maximumPages else {
            try send(pages.bytes, what: what)
            return
        }
        let sent = try pages.withIOVecs { (iov) throws(NetfilterError) -> Int in
            var kernel = sockaddr_nl()
            kernel.nl_family = sa_family_t(AF_NETLINK)
            return withUnsafeMutablePointer(to: &kernel) { address in
                var message = msghdr()
                message.msg_name = UnsafeMutableRawPointer(address)
                message.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
                message.msg_iov = UnsafeMutablePointer(mutating: iov.baseAddress)
                message.msg_iovlen = iov.count
                return sendmsg(mnl_socket_get_fd(handle), &message, 0)
            }
        }
        guard sent == pages.byteCount else { throw .system("sending \(what) (\(pages.byteCount) bytes in \(pages.pageCount) pages)") }
    }

    /// Receives one datagram (`mnl_socket_recvfrom`, which also refuses a truncated one with
    /// `ENOSPC`); nil when `wait` is false and nothing is queued.
    func receive(wait: Bool) throws(NetfilterError) -> [UInt8]? {
        while true {
            if !wait {
                // mnl_socket_recvfrom always blocks: ask first whether anything (or an error
                // such as ENOBUFS) is queued.
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, 0)
                if ready < 0 && errno == EINTR { continue }
                if ready == 0 { return nil }
            }
            let n = receiveBuffer.withUnsafeMutableBytes { mnl_socket_recvfrom(handle, $0.baseAddress, $0.count) }
            if n >= 0 { return Array(receiveBuffer[0..<n]) }
            if errno == EINTR { continue }
            if errno == EAGAIN && !wait { return nil }
            throw .system("receiving from netfilter netlink socket")
        }
    }
}
