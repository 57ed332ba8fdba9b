import CNetfilter

/// One netlink message received from the kernel; `payload` follows the `nlmsghdr`.
struct NetlinkMessage {
    var type: UInt16
    var flags: UInt16
    var seq: UInt32
    /// `nlmsg_pid`: for a notification, the port id of the socket whose request caused it.
    var portID: UInt32 = 0
    var payload: ArraySlice<UInt8>

    /// For nftables messages: the attributes after the 4-byte `nfgenmsg`.
    var attributes: NetlinkAttributes { NetlinkAttributes(payload.dropFirst(4)) }

    /// The `res_id` of the `nfgenmsg`: nftables puts the low 16 bits of the generation there.
    var resourceID: UInt16 {
        guard payload.count >= 4 else { return 0 }
        return UInt16(payload[payload.startIndex + 2]) << 8 | UInt16(payload[payload.startIndex + 3])
    }
}

/// A `NLMSG_ERROR` payload: the errno, the sequence number of the message it answers and,
/// with extended acks, the kernel's message and the offset of the offending attribute.
struct NetlinkAck {
    var errno: Int32
    var seq: UInt32
    var message: String?
    /// Offset of the bad attribute from the start of the original `nlmsghdr`.
    var attributeOffset: Int?
    // Read from an `NLMSG_ERROR` with libmnl: `init?(_ nlh:)` in MessageLoop.swift.
}

/// The attributes (TLVs) of a message or nest, iterated in place without copying, with libmnl:
/// `mnl_attr_ok` checks each header against the bytes left, `mnl_attr_next` steps over it.
struct NetlinkAttributes: Sequence {
    let bytes: ArraySlice<UInt8>
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    struct Iterator: IteratorProtocol {
        let bytes: ArraySlice<UInt8>
        var i: Int
        mutating func next() -> NetlinkAttribute? {
            let left = bytes.endIndex - i
            guard left >= MemoryLayout<nlattr>.size else { return nil }
            let start = i
            let step: (type: UInt16, rawType: UInt16, length: Int, next: Int)? = bytes.withUnsafeBytes { raw in
                // Attributes start on 4 bytes within a message, and messages within a datagram.
                let attr = UnsafeRawPointer(raw.baseAddress! + (start - bytes.startIndex)).assumingMemoryBound(to: nlattr.self)
                guard mnl_attr_ok(attr, Int32(clamping: left)) else { return nil }
                let next = UnsafeRawPointer(mnl_attr_next(attr)) - UnsafeRawPointer(attr)
                return (mnl_attr_get_type(attr), attr.pointee.nla_type, Int(mnl_attr_get_len(attr)), next)
            }
            guard let step else { return nil }
            i = Swift.min(start + step.next, bytes.endIndex)
            return NetlinkAttribute(rawType: step.rawType, offset: start,
                                    payload: bytes[(start + MemoryLayout<nlattr>.size)..<(start + step.length)])
        }
    }

    func makeIterator() -> Iterator { Iterator(bytes: bytes, i: bytes.startIndex) }

    /// The first attribute of `type`.
    subscript(_ type: UInt16) -> NetlinkAttribute? {
        first { $0.type == type }
    }
}

/// `NetlinkAttributes` over borrowed bytes, for the hot loops that decode large dumps: an
/// attribute is a type and a pointer range, so stepping through thousands of them neither
/// retains nor releases anything. Valid only inside the `withUnsafeBytes` that lends the bytes.
struct BorrowedAttributes: Sequence {
    let bytes: UnsafeRawBufferPointer

    struct Iterator: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        mutating func next() -> BorrowedAttribute? {
            let left = bytes.count - offset
            guard left >= MemoryLayout<nlattr>.size, let base = bytes.baseAddress else { return nil }
            let attr = (base + offset).assumingMemoryBound(to: nlattr.self)
            guard mnl_attr_ok(attr, Int32(clamping: left)) else { return nil }
            let length = Int(mnl_attr_get_len(attr))
            let payload = UnsafeRawBufferPointer(rebasing: bytes[(offset + MemoryLayout<nlattr>.size)..<(offset + length)])
            offset = Swift.min(offset + (UnsafeRawPointer(mnl_attr_next(attr)) - UnsafeRawPointer(attr)), bytes.count)
            return BorrowedAttribute(rawType: attr.pointee.nla_type, payload: payload)
        }
    }

    func makeIterator() -> Iterator { Iterator(bytes: bytes) }

    /// The first attribute of `type`.
    subscript(_ type: UInt16) -> BorrowedAttribute? {
        first { $0.type == type }
    }
}

/// One attribute of `BorrowedAttributes`.
struct BorrowedAttribute {
    var rawType: UInt16
    var payload: UnsafeRawBufferPointer

    var type: UInt16 { rawType & 0x3fff }  // NLA_TYPE_MASK
    var u32: UInt32 { payload.count >= 4 ? UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self)) : 0 }
    var nested: BorrowedAttributes { BorrowedAttributes(bytes: payload) }
}

extension NetlinkMessage {
    /// The nftables attributes (after the 4-byte `nfgenmsg`), borrowed for `body`.
    func withBorrowedAttributes<R>(_ body: (BorrowedAttributes) throws -> R) rethrows -> R {
        try payload.withUnsafeBytes { raw in
            try body(BorrowedAttributes(bytes: raw.count >= 4 ? UnsafeRawBufferPointer(rebasing: raw[4...]) : UnsafeRawBufferPointer(start: nil, count: 0)))
        }
    }
}

/// One attribute; typed accessors read nftables' big-endian integers.
struct NetlinkAttribute {
    var rawType: UInt16
    /// Index of the attribute header in the underlying buffer.
    var offset: Int
    var payload: ArraySlice<UInt8>

    /// The type without the nested / byte-order flag bits (`mnl_attr_get_type`).
    var type: UInt16 { rawType & 0x3fff }  // NLA_TYPE_MASK, a macro Swift cannot import

    var u8: UInt8 { payload.first ?? 0 }
    var u32: UInt32 { payload.count >= 4 ? readBig(UInt32.self, payload, payload.startIndex) : 0 }
    var u64: UInt64 { payload.count >= 8 ? readBig(UInt64.self, payload, payload.startIndex) : 0 }
    var hostU32: UInt32 { payload.count >= 4 ? readHost(UInt32.self, payload, payload.startIndex) : 0 }
    var string: String {
        let end = payload.firstIndex(of: 0) ?? payload.endIndex
        return String(decoding: payload[payload.startIndex..<end], as: UTF8.self)
    }
    var nested: NetlinkAttributes { NetlinkAttributes(payload) }
}

func readHost<T: FixedWidthInteger>(_: T.Type, _ b: ArraySlice<UInt8>, _ at: Int) -> T {
    var v = T.zero
    withUnsafeMutableBytes(of: &v) { raw in
        for k in 0..<MemoryLayout<T>.size { raw[k] = b[at + k] }
    }
    return v
}

func readBig<T: FixedWidthInteger>(_: T.Type, _ b: ArraySlice<UInt8>, _ at: Int) -> T {
    var v = T.zero
    for k in 0..<MemoryLayout<T>.size { v = v << 8 | T(b[at + k]) }
    return v
}
