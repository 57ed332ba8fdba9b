import Revocation
import ZonePolicy

/// A sock_diag message that could not be decoded: where it starts, what in it failed, and why.
public struct SockDiagDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Byte offset of the netlink message in the input.
    public var offset: Int
    /// What could not be decoded: `netlink message header`, `inet_diag_msg`, `attribute INET_DIAG_CGROUP_ID`.
    public var what: String
    /// Why.
    public var problem: String

    public init(offset: Int, what: String, problem: String) {
        self.offset = offset
        self.what = what
        self.problem = problem
    }

    public var description: String { "decoding the sock_diag message at byte \(offset): \(what): \(problem)" }
}

/// Decodes `SOCK_DIAG_BY_FAMILY` replies (`struct inet_diag_msg` and its attributes,
/// concatenated as a dump delivers them) into sockets, without cgroup paths.
///
/// Total: a truncated or nonsensical message or attribute is a thrown `SockDiagDecodeError`
/// naming it, never a trap. Other message types (`NLMSG_DONE`, errors) and families other than
/// IPv4 and IPv6 are skipped. `proto` is the protocol the dump asked for: inet_diag replies
/// carry it only as an optional attribute (`INET_DIAG_PROTOCOL`), which wins when present.
public func decodeSockDiagMessages(_ bytes: [UInt8], proto: UInt8) throws(SockDiagDecodeError) -> [LocalSocket] {
    var sockets: [LocalSocket] = []
    var at = 0
    while at < bytes.count {
        let remaining = bytes.count - at
        guard remaining >= 16 else {
            throw SockDiagDecodeError(offset: at, what: "netlink message header", problem: "\(remaining) bytes, expected at least 16")
        }
        let length = Int(SDWire.le32(bytes, at))
        guard length >= 16 else {
            throw SockDiagDecodeError(offset: at, what: "netlink message header", problem: "length \(length) is shorter than the header")
        }
        guard length <= remaining else {
            throw SockDiagDecodeError(offset: at, what: "netlink message header", problem: "length \(length), but \(remaining) bytes remain")
        }
        if SDWire.le16(bytes, at + 4) == SDWire.byFamily, let s = try SDWire.socket(bytes, at, (at + 16)..<(at + length), proto: proto) {
            sockets.append(s)
        }
        at = min(bytes.count, (at + length + 3) & ~3)
    }
    return sockets
}

/// The wire layout of `struct inet_diag_msg` (linux/inet_diag.h), read in place.
enum SDWire {
    /// `SOCK_DIAG_BY_FAMILY`, the type of every reply of an inet_diag dump.
    static let byFamily: UInt16 = 20
    /// `sizeof(struct inet_diag_msg)`.
    static let messageSize = 72
    /// Attribute types (`INET_DIAG_*`).
    static let protocolAttribute: UInt16 = 10
    static let v6OnlyAttribute: UInt16 = 11
    static let cgroupAttribute: UInt16 = 21

    static func le16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(le16(b, i)) | UInt32(le16(b, i + 2)) << 16 }
    static func le64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(le32(b, i)) | UInt64(le32(b, i + 4)) << 32 }
    static func be16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
    /// `count` bytes in network order from `i`.
    static func address(_ b: [UInt8], _ i: Int, count: Int) -> UInt128 {
        b[i..<(i + count)].reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
    }

    /// One message's socket; nil for a family other than IPv4 and IPv6.
    static func socket(_ b: [UInt8], _ offset: Int, _ body: Range<Int>, proto: UInt8) throws(SockDiagDecodeError) -> LocalSocket? {
        guard body.count >= messageSize else {
            throw SockDiagDecodeError(offset: offset, what: "inet_diag_msg", problem: "\(body.count) bytes, expected \(messageSize)")
        }
        let m = body.lowerBound
        let family: AddressFamily
        switch b[m] {
        case 2: family = .ipv4     // AF_INET
        case 10: family = .ipv6    // AF_INET6
        default: return nil
        }
        // idiag_sport, idiag_dport (network order), idiag_src[4], idiag_dst[4]: an IPv4 address
        // sits in the first four bytes of its 16.
        let size = family == .ipv4 ? 4 : 16
        var s = LocalSocket(family: family, proto: proto,
                            localAddress: address(b, m + 8, count: size), localPort: be16(b, m + 4),
                            remoteAddress: address(b, m + 24, count: size), remotePort: be16(b, m + 6),
                            uid: le32(b, m + 64))
        var i = m + messageSize
        while i < body.upperBound {
            let left = body.upperBound - i
            guard left >= 4 else {
                throw SockDiagDecodeError(offset: offset, what: "attribute header at byte \(i)", problem: "\(left) bytes, expected 4")
            }
            let length = Int(le16(b, i))
            let type = le16(b, i + 2) & 0x3fff
            guard length >= 4, length <= left else {
                throw SockDiagDecodeError(offset: offset, what: "attribute type \(type) at byte \(i)", problem: "length \(length), but \(left) bytes remain")
            }
            switch type {
            case cgroupAttribute:
                guard length == 12 else {
                    throw SockDiagDecodeError(offset: offset, what: "attribute INET_DIAG_CGROUP_ID", problem: "\(length - 4) bytes, expected 8")
                }
                s.cgroupID = le64(b, i + 4)
            case protocolAttribute:
                guard length == 5 else {
                    throw SockDiagDecodeError(offset: offset, what: "attribute INET_DIAG_PROTOCOL", problem: "\(length - 4) bytes, expected 1")
                }
                s.proto = b[i + 4]
            case v6OnlyAttribute:
                guard length == 5 else {
                    throw SockDiagDecodeError(offset: offset, what: "attribute INET_DIAG_SKV6ONLY", problem: "\(length - 4) bytes, expected 1")
                }
                s.v6Only = b[i + 4] != 0
            default:
                break
            }
            i += (length + 3) & ~3
        }
        return s
    }
}
