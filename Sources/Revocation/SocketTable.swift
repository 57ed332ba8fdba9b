import Synchronization
import ZonePolicy

/// A TCP or UDP socket of this network namespace and who owns it: what the kernel's `socket
/// cgroupv2` and `meta skuid` matches see for the flows it sends and receives.
public struct LocalSocket: Hashable, Sendable {
    public var family: AddressFamily
    /// 6 TCP, 17 UDP.
    public var proto: UInt8
    public var localAddress: UInt128
    public var localPort: UInt16
    /// The peer; 0 and port 0 for a socket that is not connected (a listener, an unconnected UDP socket).
    public var remoteAddress: UInt128
    public var remotePort: UInt16
    /// The socket's owner (`meta skuid`).
    public var uid: UInt32
    /// The socket's cgroup v2 id (the inode number of its directory); nil when the kernel did not say.
    public var cgroupID: UInt64?
    /// That cgroup's path from the cgroup2 root (`/system.slice/db.service`); nil when the id is
    /// unknown or its directory is gone (a removed cgroup is in no zone's map any more).
    public var cgroupPath: String?
    /// An IPv6 socket with `IPV6_V6ONLY`: it never sees IPv4 flows.
    public var v6Only = false

    public init(family: AddressFamily, proto: UInt8, localAddress: UInt128, localPort: UInt16,
                remoteAddress: UInt128 = 0, remotePort: UInt16 = 0, uid: UInt32, cgroupID: UInt64? = nil, cgroupPath: String? = nil) {
        self.family = family
        self.proto = proto
        self.localAddress = localAddress
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.uid = uid
        self.cgroupID = cgroupID
        self.cgroupPath = cgroupPath
    }
}

/// The socket table of a network namespace, as far as revocation uses it: which local socket
/// (and so which unit, cgroup or user) sent or received a tracked flow.
///
/// `NetlinkSockets` (module `SocketDiag`) asks the kernel over sock_diag; `InMemorySockets` is
/// the fake for tests.
public protocol SocketTable: Sendable {
    /// Every TCP and UDP socket of both families, with owners and cgroup paths.
    func sockets() throws -> [LocalSocket]
}

/// A socket table in memory, for tests.
public final class InMemorySockets: SocketTable {
    private let store: Mutex<(sockets: [LocalSocket], reads: Int)>

    public init(_ sockets: [LocalSocket] = []) { store = Mutex((sockets, 0)) }

    /// How many times the table was read: tests check that policies without identities cost none.
    public var reads: Int { store.withLock { $0.reads } }

    public func sockets() throws -> [LocalSocket] { store.withLock { s in s.reads += 1; return s.sockets } }
}

/// Sockets by the tuple a flow shows them, for one revocation pass.
///
/// A flow's local end is found as the kernel's socket lookup finds it: the connected socket with
/// exactly the flow's four-tuple first, then a socket bound to the local address and port, then
/// one bound to the port on every address (`0.0.0.0`/`::`). An IPv6 socket's IPv4-mapped
/// addresses (`::ffff:192.0.2.1`, dual-stack sockets) stand for IPv4 flows too.
public struct SocketIndex: Sendable {
    struct Key: Hashable {
        var family: AddressFamily
        var proto: UInt8
        var local: UInt128
        var localPort: UInt16
        var remote: UInt128
        var remotePort: UInt16
    }

    private var sockets: [Key: LocalSocket] = [:]

    public init(_ list: [LocalSocket]) {
        for s in list {
            for (family, local, remote) in Self.views(of: s) {
                let key = Key(family: family, proto: s.proto, local: local, localPort: s.localPort, remote: remote, remotePort: s.remotePort)
                // The first socket of a key wins (a listener and its accepted sockets differ in the peer).
                if sockets[key] == nil { sockets[key] = s }
            }
        }
    }

    /// The family-native views of a socket: itself, plus IPv4 for an IPv6 socket whose
    /// addresses are IPv4-mapped (or unspecified, as a dual-stack listener's are).
    private static func views(of s: LocalSocket) -> [(AddressFamily, UInt128, UInt128)] {
        var out = [(s.family, s.localAddress, s.remoteAddress)]
        if s.family == .ipv6, !s.v6Only, let local = mappedOrAny(s.localAddress), let remote = mappedOrAny(s.remoteAddress) {
            out.append((.ipv4, local, remote))
        }
        return out
    }

    private static func mappedOrAny(_ a: UInt128) -> UInt128? {
        if a == 0 { return 0 }
        return a >> 32 == 0xffff ? a & 0xffff_ffff : nil
    }

    /// The socket at `local`:`localPort` for a flow with `remote`:`remotePort`, or nil.
    public func socket(family: AddressFamily, proto: UInt8, local: UInt128, localPort: UInt16,
                       remote: UInt128, remotePort: UInt16) -> LocalSocket? {
        sockets[Key(family: family, proto: proto, local: local, localPort: localPort, remote: remote, remotePort: remotePort)]
            ?? sockets[Key(family: family, proto: proto, local: local, localPort: localPort, remote: 0, remotePort: 0)]
            ?? sockets[Key(family: family, proto: proto, local: 0, localPort: localPort, remote: 0, remotePort: 0)]
    }

    /// The socket that sent the entry's original direction (its source is ours).
    public func sender(of e: ConntrackEntry) -> LocalSocket? {
        guard e.proto == 6 || e.proto == 17 else { return nil }
        return socket(family: e.family, proto: e.proto, local: e.source, localPort: e.sourcePort,
                      remote: e.destination, remotePort: e.destinationPort)
    }

    /// The socket that received the entry's original direction (its translated destination is ours).
    public func receiver(of e: ConntrackEntry) -> LocalSocket? {
        guard e.proto == 6 || e.proto == 17 else { return nil }
        return socket(family: e.family, proto: e.proto, local: e.translatedDestination, localPort: e.translatedDestinationPort,
                      remote: e.source, remotePort: e.sourcePort)
    }
}
