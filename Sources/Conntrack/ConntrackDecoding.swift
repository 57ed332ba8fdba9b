import Revocation
import ZonePolicy

/// A ctnetlink message that could not be decoded: where it starts, what in it failed, and why.
///
/// `description` reads like `decoding the conntrack message at byte 0: attribute
/// CTA_TUPLE_ORIG/CTA_TUPLE_IP/CTA_IP_V4_SRC: 3 bytes, expected 4`.
public struct ConntrackDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Byte offset of the netlink message in the input.
    public var offset: Int
    /// What could not be decoded: `netlink message header`, `attribute CTA_TUPLE_ORIG`, ….
    public var what: String
    /// Why.
    public var problem: String

    /// An error for the message at `offset`.
    public init(offset: Int, what: String, problem: String) {
        self.offset = offset
        self.what = what
        self.problem = problem
    }

    public var description: String { "decoding the conntrack message at byte \(offset): \(what): \(problem)" }
}

/// Decodes ctnetlink conntrack messages (`IPCTNL_MSG_CT_NEW`/`IPCTNL_MSG_CT_DELETE` of
/// `NFNL_SUBSYS_CTNETLINK`, as a dump or the event groups deliver them, concatenated) into
/// the entries revocation works on. `NetlinkConntrack.scan` decodes its dumps with it.
///
/// Total: a truncated, oversized or nonsensical message or attribute is a thrown
/// `ConntrackDecodeError` naming it (with its path of nested attributes), never a trap.
/// Messages of other types (`NLMSG_DONE`, acks, expectations) and families other than IPv4
/// and IPv6 are skipped, as the dump callback skips them.
public func decodeConntrackMessages(_ bytes: [UInt8]) throws(ConntrackDecodeError) -> [ConntrackEntry] {
    var entries: [ConntrackEntry] = []
    try forEachMessage(bytes) { at, length, type throws(ConntrackDecodeError) in
        if type == CTWire.newMessage || type == CTWire.deleteMessage {
            if let e = try CTWire(bytes: bytes, offset: at).entry((at + 16)..<(at + length)) { entries.append(e) }
        }
        return true
    }
    return entries
}

/// The entry count of an `IPCTNL_MSG_CT_GET_STATS` reply (`CTA_STATS_GLOBAL_ENTRIES`); nil
/// when `bytes` hold no such reply or it has no count.
public func decodeConntrackEntryCount(_ bytes: [UInt8]) throws(ConntrackDecodeError) -> Int? {
    var count: Int?
    try forEachMessage(bytes) { at, length, type throws(ConntrackDecodeError) in
        guard type == CTWire.statsMessage else { return true }
        guard length >= 20 else { throw ConntrackDecodeError(offset: at, what: "nfgenmsg header", problem: "\(length - 16) bytes, expected 4") }
        let wire = CTWire(bytes: bytes, offset: at)
        let a = try wire.attributes((at + 20)..<(at + length), path: "")
        count = try wire.number(a, 1, "CTA_STATS_GLOBAL_ENTRIES", size: 4).map { Int($0) }
        return false
    }
    return count
}

/// Walks the netlink messages concatenated in `bytes`, checking each header against the bytes
/// left: `body` gets a message's offset, length and type, and returns false to stop.
private func forEachMessage(_ bytes: [UInt8],
                            _ body: (_ at: Int, _ length: Int, _ type: UInt16) throws(ConntrackDecodeError) -> Bool) throws(ConntrackDecodeError) {
    var at = 0
    while at < bytes.count {
        let remaining = bytes.count - at
        guard remaining >= 16 else {
            throw ConntrackDecodeError(offset: at, what: "netlink message header", problem: "\(remaining) bytes, expected at least 16")
        }
        let length = Int(CTWire.le32(bytes, at))
        guard length >= 16 else {
            throw ConntrackDecodeError(offset: at, what: "netlink message header", problem: "length \(length) is shorter than the header")
        }
        guard length <= remaining else {
            throw ConntrackDecodeError(offset: at, what: "netlink message header", problem: "length \(length), but \(remaining) bytes remain")
        }
        guard try body(at, length, CTWire.le16(bytes, at + 4)) else { return }
        at = min(bytes.count, (at + length + 3) & ~3)
    }
}

/// The wire layout of ctnetlink (linux/netfilter/nfnetlink_conntrack.h), read in place.
struct CTWire {
    static let newMessage: UInt16 = 1 << 8 | 0     // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
    static let deleteMessage: UInt16 = 1 << 8 | 2  // IPCTNL_MSG_CT_DELETE
    static let statsMessage: UInt16 = 1 << 8 | 5   // IPCTNL_MSG_CT_GET_STATS
    /// Nesting a message may use; ctnetlink's deepest is 3 (CTA_TUPLE_ORIG/CTA_TUPLE_IP/…).
    static let maximumDepth = 4

    let bytes: [UInt8]
    /// The message's offset, for errors.
    let offset: Int

    static func le16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(le16(b, i)) | UInt32(le16(b, i + 2)) << 16 }

    func error(_ what: String, _ problem: String) -> ConntrackDecodeError {
        ConntrackDecodeError(offset: offset, what: what, problem: problem)
    }

    /// The attributes in `range`, by type without the flag bits (the last of a type wins).
    func attributes(_ range: Range<Int>, path: String) throws(ConntrackDecodeError) -> [UInt16: Range<Int>] {
        var found: [UInt16: Range<Int>] = [:]
        var i = range.lowerBound
        while i < range.upperBound {
            let left = range.upperBound - i
            guard left >= 4 else { throw error("attribute header at byte \(i)\(path.isEmpty ? "" : " in \(path)")", "\(left) bytes, expected 4") }
            let length = Int(Self.le16(bytes, i))
            let type = Self.le16(bytes, i + 2) & 0x3fff  // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
            guard length >= 4, length <= left else {
                throw error("attribute \(path.isEmpty ? "" : path + "/")type \(type) at byte \(i)", "length \(length), but \(left) bytes remain")
            }
            found[type] = (i + 4)..<(i + length)
            i += (length + 3) & ~3
        }
        return found
    }

    /// A fixed-size attribute read big-endian (network order, as ctnetlink sends numbers).
    func number(_ a: [UInt16: Range<Int>], _ type: UInt16, _ name: String, size: Int) throws(ConntrackDecodeError) -> UInt128? {
        guard let r = a[type] else { return nil }
        guard r.count == size else { throw error("attribute \(name)", "\(r.count) bytes, expected \(size)") }
        return r.reduce(UInt128(0)) { $0 << 8 | UInt128(bytes[$1]) }
    }

    /// A nested attribute's children; nil when it is absent.
    func nested(_ a: [UInt16: Range<Int>], _ type: UInt16, _ path: String) throws(ConntrackDecodeError) -> [UInt16: Range<Int>]? {
        guard let r = a[type] else { return nil }
        return try attributes(r, path: path)
    }

    /// A tuple's addresses and protocol fields (`CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`).
    struct Tuple {
        var source: UInt128, destination: UInt128
        var proto: UInt8
        var sourcePort: UInt16?, destinationPort: UInt16?
        var icmpType: UInt8?, icmpCode: UInt8?, icmpID: UInt16?
    }

    func tuple(_ a: [UInt16: Range<Int>], _ type: UInt16, _ name: String, family: AddressFamily) throws(ConntrackDecodeError) -> Tuple? {
        guard let t = try nested(a, type, name) else { return nil }
        guard let ip = try nested(t, 1, name + "/CTA_TUPLE_IP") else { throw error("attribute \(name)/CTA_TUPLE_IP", "missing") }
        let (srcType, dstType, size, names) = family == .ipv4
            ? (UInt16(1), UInt16(2), 4, ("CTA_IP_V4_SRC", "CTA_IP_V4_DST")) : (3, 4, 16, ("CTA_IP_V6_SRC", "CTA_IP_V6_DST"))
        guard let src = try number(ip, srcType, "\(name)/CTA_TUPLE_IP/\(names.0)", size: size),
              let dst = try number(ip, dstType, "\(name)/CTA_TUPLE_IP/\(names.1)", size: size) else {
            throw error("attribute \(name)/CTA_TUPLE_IP", "no \(family == .ipv4 ? "IPv4" : "IPv6") source and destination")
        }
        let protoPath = name + "/CTA_TUPLE_PROTO"
        guard let p = try nested(t, 2, protoPath) else { throw error("attribute \(protoPath)", "missing") }
        guard let num = try number(p, 1, protoPath + "/CTA_PROTO_NUM", size: 1) else { throw error("attribute \(protoPath)/CTA_PROTO_NUM", "missing") }
        var tuple = Tuple(source: src, destination: dst, proto: UInt8(num))
        tuple.sourcePort = try number(p, 2, protoPath + "/CTA_PROTO_SRC_PORT", size: 2).map { UInt16($0) }
        tuple.destinationPort = try number(p, 3, protoPath + "/CTA_PROTO_DST_PORT", size: 2).map { UInt16($0) }
        // ICMP (4, 5, 6) and ICMPv6 (7, 8, 9) each have their own id, type and code.
        let icmp: (UInt16, UInt16, UInt16, String) = family == .ipv4 ? (4, 5, 6, "ICMP") : (7, 8, 9, "ICMPV6")
        tuple.icmpID = try number(p, icmp.0, "\(protoPath)/CTA_PROTO_\(icmp.3)_ID", size: 2).map { UInt16($0) }
        tuple.icmpType = try number(p, icmp.1, "\(protoPath)/CTA_PROTO_\(icmp.3)_TYPE", size: 1).map { UInt8($0) }
        tuple.icmpCode = try number(p, icmp.2, "\(protoPath)/CTA_PROTO_\(icmp.3)_CODE", size: 1).map { UInt8($0) }
        return tuple
    }

    /// One conntrack message's entry; nil for a family other than IPv4 and IPv6.
    func entry(_ body: Range<Int>) throws(ConntrackDecodeError) -> ConntrackEntry? {
        guard body.count >= 4 else { throw error("nfgenmsg header", "\(body.count) bytes, expected 4") }
        let family: AddressFamily
        switch bytes[body.lowerBound] {
        case 2: family = .ipv4    // AF_INET
        case 10: family = .ipv6   // AF_INET6
        default: return nil
        }
        let a = try attributes((body.lowerBound + 4)..<body.upperBound, path: "")
        guard let original = try tuple(a, 1, "CTA_TUPLE_ORIG", family: family) else { throw error("attribute CTA_TUPLE_ORIG", "missing") }
        let reply = try tuple(a, 2, "CTA_TUPLE_REPLY", family: family)
        var e = ConntrackEntry(family: family, proto: original.proto, source: original.source, destination: original.destination,
                               translatedDestination: reply?.source ?? original.destination)
        if e.isICMP {
            e.icmpType = original.icmpType ?? 0
            e.icmpCode = original.icmpCode ?? 0
            e.icmpID = original.icmpID ?? 0
        } else if e.hasPorts {
            guard let sport = original.sourcePort, let dport = original.destinationPort else {
                throw error("attribute CTA_TUPLE_ORIG/CTA_TUPLE_PROTO", "protocol \(e.proto) without source and destination ports")
            }
            e.sourcePort = sport
            e.destinationPort = dport
            e.translatedDestinationPort = reply?.sourcePort ?? dport
        }
        e.zone = try number(a, 18, "CTA_ZONE", size: 2).map { UInt16($0) } ?? 0
        e.id = try number(a, 12, "CTA_ID", size: 4).map { UInt32($0) } ?? 0
        return e
    }
}
