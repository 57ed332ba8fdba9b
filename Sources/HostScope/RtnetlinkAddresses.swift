#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NetworkNamespace
import Synchronization
import ZonePolicy

/// A failure talking rtnetlink, naming the operation and the errno.
public struct RtnetlinkError: Error, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}

/// This host's addresses from the kernel over rtnetlink: an `RTM_GETADDR` dump, then the
/// `RTM_NEWADDR`/`RTM_DELADDR` notifications of the IPv4 and IPv6 address groups. Optionally
/// inside a named network namespace (`ip netns`), like the nftables socket.
public final class RtnetlinkAddresses: HostAddressSource {
    let namespace: String?

    public init(namespace: String?) { self.namespace = namespace }

    // Netlink constants (linux/netlink.h, linux/rtnetlink.h): not all are imported by Glibc.
    static let NETLINK_ROUTE: Int32 = 0
    static let RTM_NEWADDR: UInt16 = 20, RTM_DELADDR: UInt16 = 21, RTM_GETADDR: UInt16 = 22
    static let NLMSG_ERROR: UInt16 = 2, NLMSG_DONE: UInt16 = 3
    static let NLM_F_REQUEST: UInt16 = 1, NLM_F_DUMP: UInt16 = 0x300
    static let RTMGRP_IPV4_IFADDR: UInt32 = 0x10, RTMGRP_IPV6_IFADDR: UInt32 = 0x100
    static let IFA_ADDRESS: UInt16 = 1, IFA_LOCAL: UInt16 = 2

    public func current() throws -> [IPPrefix] {
        let fd = try open(groups: 0)
        defer { close(fd) }
        return try dump(fd)
    }

    public func events() -> AsyncStream<HostAddressEvent> {
        let (stream, continuation) = AsyncStream<HostAddressEvent>.makeStream()
        let stop = StopFlag()
        continuation.onTermination = { _ in stop.set() }
        // Both sockets are opened here, on the caller's thread and time: entering the namespace
        // needs CAP_SYS_ADMIN, which the daemon drops once its sources are started.
        // Subscribe first, then dump: a change in between arrives after the snapshot, in order.
        guard let fd = try? open(groups: Self.RTMGRP_IPV4_IFADDR | Self.RTMGRP_IPV6_IFADDR) else {
            continuation.finish(); return stream
        }
        guard let dumpFD = try? open(groups: 0) else {
            close(fd); continuation.finish(); return stream
        }
        let thread = Thread { [self] in
            defer { close(fd); close(dumpFD) }
            if let all = try? dump(dumpFD) { continuation.yield(.resynced(all)) }
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while !stop.isSet {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 200) > 0 else { continue }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 {
                    if errno == ENOBUFS, let all = try? dump(dumpFD) { continuation.yield(.resynced(all)) }
                    if errno == EINTR || errno == ENOBUFS || errno == EAGAIN { continue }
                    break
                }
                Self.parse(buffer[..<n]) { type, address in
                    continuation.yield(type == Self.RTM_NEWADDR ? .added(address) : .removed(address))
                }
            }
            continuation.finish()
        }
        thread.name = "zonewall-rtnetlink"
        thread.start()
        return stream
    }

    /// A bound NETLINK_ROUTE socket, in the namespace when one is named (opened on a throwaway
    /// thread there: `NetworkNamespace.run`).
    func open(groups: UInt32) throws -> Int32 {
        guard let namespace else { return try Self.openHere(groups: groups) }
        switch NetworkNamespace(namespace).run({ Result { try Self.openHere(groups: groups) } }) {
        case .success(let opened): return try opened.get()
        case .failure(let e): throw RtnetlinkError(operation: e.operation, errno: e.errno)
        }
    }

    static func openHere(groups: UInt32) throws -> Int32 {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw RtnetlinkError(operation: "opening a NETLINK_ROUTE socket", errno: errno) }
        // struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; u32 nl_pid; u32 nl_groups; }
        var addr = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: UInt16(AF_NETLINK)) { for i in 0..<2 { addr[i] = $0[i] } }
        withUnsafeBytes(of: groups) { for i in 0..<4 { addr[8 + i] = $0[i] } }
        let rc = addr.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), 12) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw RtnetlinkError(operation: "binding a NETLINK_ROUTE socket", errno: e)
        }
        return fd
    }

    /// `RTM_GETADDR` with `NLM_F_DUMP`: every address of every interface.
    func dump(_ fd: Int32) throws -> [IPPrefix] {
        // nlmsghdr (16 bytes) + ifaddrmsg (8 bytes), family AF_UNSPEC: both families.
        var request = [UInt8](repeating: 0, count: 24)
        func put32(_ v: UInt32, _ at: Int) { withUnsafeBytes(of: v) { for i in 0..<4 { request[at + i] = $0[i] } } }
        func put16(_ v: UInt16, _ at: Int) { withUnsafeBytes(of: v) { for i in 0..<2 { request[at + i] = $0[i] } } }
        put32(24, 0); put16(Self.RTM_GETADDR, 4); put16(Self.NLM_F_REQUEST | Self.NLM_F_DUMP, 6); put32(1, 8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == 24 else {
            throw RtnetlinkError(operation: "sending RTM_GETADDR", errno: errno)
        }
        var out: [IPPrefix] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RtnetlinkError(operation: "reading the RTM_GETADDR dump", errno: errno)
            }
            var finished = false
            let status = Self.parse(buffer[..<n], done: &finished) { _, a in out.append(a) }
            if status != 0 { throw RtnetlinkError(operation: "RTM_GETADDR dump", errno: -status) }
            if finished { return Array(Set(out)).sorted() }
        }
    }

    static func parse(_ bytes: ArraySlice<UInt8>, _ each: (UInt16, IPPrefix) -> Void) {
        var finished = false
        _ = parse(bytes, done: &finished, each)
    }

    /// Walks the netlink messages; calls `each` for every address message. Returns a negative
    /// errno from an `NLMSG_ERROR`, else 0; sets `done` at `NLMSG_DONE`.
    static func parse(_ bytes: ArraySlice<UInt8>, done: inout Bool, _ each: (UInt16, IPPrefix) -> Void) -> Int32 {
        let b = Array(bytes)
        func u16(_ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
        var offset = 0
        while offset + 16 <= b.count {
            let length = Int(u32(offset)), type = u16(offset + 4)
            guard length >= 16, offset + length <= b.count else { break }
            defer { offset += (length + 3) & ~3 }
            switch type {
            case NLMSG_DONE:
                done = true
            case NLMSG_ERROR:
                let code = Int32(bitPattern: u32(offset + 16))
                if code != 0 { return code }
            case RTM_NEWADDR, RTM_DELADDR:
                guard length >= 24 else { continue }
                let family = Int32(b[offset + 16])
                var address: [UInt8]?, local: [UInt8]?
                var a = offset + 24
                while a + 4 <= offset + length {
                    let alen = Int(u16(a)), atype = u16(a + 2)
                    guard alen >= 4, a + alen <= offset + length else { break }
                    let payload = Array(b[(a + 4)..<(a + alen)])
                    if atype == IFA_ADDRESS { address = payload }
                    if atype == IFA_LOCAL { local = payload }
                    a += (alen + 3) & ~3
                }
                // IPv4 point-to-point links put the peer in IFA_ADDRESS: IFA_LOCAL is our own.
                guard let raw = local ?? address else { continue }
                if family == AF_INET, raw.count == 4 {
                    let v = raw.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
                    each(type, IPPrefix(family: .ipv4, address: v, length: 32))
                } else if family == AF_INET6, raw.count == 16 {
                    let v = raw.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
                    each(type, IPPrefix(family: .ipv6, address: v, length: 128))
                }
            default:
                break
            }
        }
        return 0
    }
}

/// Tells the reading thread to stop.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
}
