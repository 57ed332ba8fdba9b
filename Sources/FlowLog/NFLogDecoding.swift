import Foundation

/// An NFLOG message that could not be decoded: where it starts, what in it failed, and why.
///
/// `description` reads like `decoding the NFLOG message at byte 96: attribute NFULA_TIMESTAMP:
/// 12 bytes, expected 16`.
public struct NFLogDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Byte offset of the netlink message in the input.
    public var offset: Int
    /// What could not be decoded: `netlink message header`, `attribute NFULA_PREFIX`, ….
    public var what: String
    /// Why.
    public var problem: String

    /// An error for the message at `offset`.
    public init(offset: Int, what: String, problem: String) {
        self.offset = offset
        self.what = what
        self.problem = problem
    }

    public var description: String { "decoding the NFLOG message at byte \(offset): \(what): \(problem)" }
}

/// Decodes NFLOG packet messages (`NFULNL_MSG_PACKET` of subsystem `NFNL_SUBSYS_ULOG`, as
/// a read from the NFLOG socket returns them, concatenated) into logged packets.
///
/// Total: a truncated, oversized or nonsensical message or attribute is a thrown
/// `NFLogDecodeError` naming it, never a trap. Messages of other types (acks, `NLMSG_DONE`) are
/// skipped, and so are packets `PacketDecoder` does not take (a foreign prefix, a non-IP
/// payload), as the listener skips them. `receivedAt` stands in for a missing timestamp.
public func decodeNFLogMessages(_ bytes: [UInt8], receivedAt: Date = Date()) throws(NFLogDecodeError) -> [LoggedPacket] {
    try decodeNFLogDatagram(bytes, receivedAt: receivedAt).compactMap(\.packet)
}

/// `decodeNFLogMessages`, keeping each packet message's sequence number (`NFULA_SEQ`, with
/// `NFULNL_CFG_F_SEQ`), also for the packets `PacketDecoder` does not take: the listener counts
/// the gaps as packets lost.
func decodeNFLogDatagram(_ bytes: [UInt8], receivedAt: Date) throws(NFLogDecodeError) -> [(packet: LoggedPacket?, sequence: UInt32?)] {
    var out: [(packet: LoggedPacket?, sequence: UInt32?)] = []
    var at = 0
    while at < bytes.count {
        let message = try NFLogWire.message(bytes, at: at)
        if message.type == NFLogWire.packetMessageType {
            out.append(try NFLogWire.packet(bytes, message.body, offset: at, receivedAt: receivedAt))
        }
        at = message.next
    }
    return out
}

/// The wire layout of NFLOG's netlink messages (linux/netfilter/nfnetlink_log.h).
enum NFLogWire {
    /// `NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET`.
    static let packetMessageType: UInt16 = 4 << 8 | 0
    static let headerSize = 16   // struct nlmsghdr
    static let genHeaderSize = 4 // struct nfgenmsg

    /// The packet-message attributes zonewall reads (`enum nfulnl_attr_type`).
    static let packetHeader: UInt16 = 1  // NFULA_PACKET_HDR
    static let timestamp: UInt16 = 3     // NFULA_TIMESTAMP
    static let payload: UInt16 = 9       // NFULA_PAYLOAD
    static let prefix: UInt16 = 10       // NFULA_PREFIX
    static let sequence: UInt16 = 12     // NFULA_SEQ

    /// Longest message taken (1 MiB): `nlmsg_len` is 32 bits, but the listener reads 64 KiB at a time.
    static let maximumMessage = 1 << 20
    /// Latest timestamp taken, 9999-12-31T23:59:59Z: later ones are nonsense, and would
    /// overflow the millisecond arithmetic of `FlowTime.format`.
    static let latestSecond: UInt64 = 253_402_300_799

    struct Message {
        var type: UInt16
        /// The bytes after `struct nlmsghdr`, within the message's own length.
        var body: Range<Int>
        /// Where the next message starts (aligned to 4).
        var next: Int
    }

    static func le16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 { UInt32(le16(b, i)) | UInt32(le16(b, i + 2)) << 16 }
    static func be(_ b: [UInt8], _ r: Range<Int>) -> UInt64 { r.reduce(0) { $0 << 8 | UInt64(b[$1]) } }

    /// The netlink message at `at`: its length must hold the header and fit the input.
    static func message(_ b: [UInt8], at: Int) throws(NFLogDecodeError) -> Message {
        let remaining = b.count - at
        guard remaining >= headerSize else {
            throw NFLogDecodeError(offset: at, what: "netlink message header", problem: "\(remaining) bytes, expected at least \(headerSize)")
        }
        let length = Int(le32(b, at))
        guard length >= headerSize else {
            throw NFLogDecodeError(offset: at, what: "netlink message header", problem: "length \(length) is shorter than the header")
        }
        guard length <= remaining else {
            throw NFLogDecodeError(offset: at, what: "netlink message header", problem: "length \(length), but \(remaining) bytes remain")
        }
        guard length <= maximumMessage else {
            throw NFLogDecodeError(offset: at, what: "netlink message header", problem: "length \(length), more than a socket read returns")
        }
        return Message(type: le16(b, at + 4), body: (at + headerSize)..<(at + length), next: min(b.count, (at + length + 3) & ~3))
    }

    /// The name of an attribute, for errors.
    static func name(_ type: UInt16) -> String {
        switch type {
        case packetHeader: "NFULA_PACKET_HDR"
        case timestamp: "NFULA_TIMESTAMP"
        case payload: "NFULA_PAYLOAD"
        case prefix: "NFULA_PREFIX"
        case sequence: "NFULA_SEQ"
        default: "type \(type)"
        }
    }

    /// The attributes of `body` after the `nfgenmsg`, by type (the last of a type wins, as
    /// with libmnl's parsers); every attribute's length must be sane.
    static func attributes(_ b: [UInt8], _ body: Range<Int>, offset: Int) throws(NFLogDecodeError) -> [UInt16: Range<Int>] {
        guard body.count >= genHeaderSize else {
            throw NFLogDecodeError(offset: offset, what: "nfgenmsg header", problem: "\(body.count) bytes, expected \(genHeaderSize)")
        }
        var found: [UInt16: Range<Int>] = [:]
        var i = body.lowerBound + genHeaderSize
        while i < body.upperBound {
            guard body.upperBound - i >= 4 else {
                throw NFLogDecodeError(offset: offset, what: "attribute header at byte \(i)", problem: "\(body.upperBound - i) bytes, expected 4")
            }
            let length = Int(le16(b, i))
            let type = le16(b, i + 2) & 0x3fff  // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
            guard length >= 4, length <= body.upperBound - i else {
                throw NFLogDecodeError(offset: offset, what: "attribute \(name(type)) at byte \(i)",
                                       problem: "length \(length), but \(body.upperBound - i) bytes remain in the message")
            }
            found[type] = (i + 4)..<(i + length)
            i += (length + 3) & ~3
        }
        return found
    }

    /// A fixed-size attribute's bytes: present and exactly `size` long.
    static func fixed(_ a: [UInt16: Range<Int>], _ type: UInt16, size: Int, offset: Int) throws(NFLogDecodeError) -> Range<Int>? {
        guard let r = a[type] else { return nil }
        guard r.count == size else {
            throw NFLogDecodeError(offset: offset, what: "attribute \(name(type))", problem: "\(r.count) bytes, expected \(size)")
        }
        return r
    }

    /// One packet message: its header, prefix, timestamp and payload, then `PacketDecoder`.
    static func packet(_ b: [UInt8], _ body: Range<Int>, offset: Int,
                       receivedAt: Date) throws(NFLogDecodeError) -> (packet: LoggedPacket?, sequence: UInt32?) {
        let a = try attributes(b, body, offset: offset)
        // struct nfulnl_msg_packet_hdr { __be16 hw_protocol; __u8 hook; __u8 _pad; }
        guard let header = try fixed(a, packetHeader, size: 4, offset: offset) else {
            throw NFLogDecodeError(offset: offset, what: "attribute NFULA_PACKET_HDR", problem: "missing")
        }
        let hook = b[header.lowerBound + 2]
        guard LogHook(kernelNumber: hook) != nil else {
            throw NFLogDecodeError(offset: offset, what: "attribute NFULA_PACKET_HDR", problem: "hook \(hook) is not a netfilter hook")
        }
        let seq = try fixed(a, sequence, size: 4, offset: offset).map { UInt32(be(b, $0)) }
        var text = ""
        if let r = a[prefix] {
            // The kernel sends the prefix with its terminating NUL (at most 128 bytes with it).
            guard let nul = b[r].firstIndex(of: 0) else {
                throw NFLogDecodeError(offset: offset, what: "attribute NFULA_PREFIX", problem: "not NUL-terminated")
            }
            guard nul - r.lowerBound < 128 else {
                throw NFLogDecodeError(offset: offset, what: "attribute NFULA_PREFIX", problem: "\(nul - r.lowerBound) bytes, at most 127")
            }
            text = String(decoding: b[r.lowerBound..<nul], as: UTF8.self)
        }
        var time = receivedAt
        // struct nfulnl_msg_packet_timestamp { __aligned_be64 sec; __aligned_be64 usec; }
        if let r = try fixed(a, timestamp, size: 16, offset: offset) {
            let sec = be(b, r.lowerBound..<(r.lowerBound + 8)), usec = be(b, (r.lowerBound + 8)..<r.upperBound)
            guard sec <= latestSecond, usec < 1_000_000 else {
                throw NFLogDecodeError(offset: offset, what: "attribute NFULA_TIMESTAMP", problem: "\(sec) s \(usec) µs is not a time")
            }
            time = Date(timeIntervalSince1970: TimeInterval(sec) + TimeInterval(usec) / 1e6)
        }
        guard let data = a[payload], !data.isEmpty else {
            throw NFLogDecodeError(offset: offset, what: "attribute NFULA_PAYLOAD", problem: "missing or empty")
        }
        return (PacketDecoder.decode(prefix: text, hook: hook, payload: b[data], time: time), seq)
    }
}
