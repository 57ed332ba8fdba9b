import CNetfilter
import Ruleset

/// Appends netlink messages and attributes (TLVs) to one growing byte buffer.
///
/// A batch's messages are built here one at a time, in place, so encoding a hundred thousand
/// set elements costs no per-element allocation, then moved to the batch's pages (`BatchPages`).
struct NetlinkWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int = 4096) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    // MARK: Messages

    /// Starts a `nlmsghdr` + `nfgenmsg`; returns the offset to pass to `endMessage`.
    mutating func beginMessage(type: UInt16, flags: UInt16, seq: UInt32, family: UInt8, resourceID: UInt16 = 0) -> Int {
        let start = bytes.count
        appendHost(UInt32(0))        // nlmsg_len, patched by endMessage
        appendHost(type)
        appendHost(flags)
        appendHost(seq)
        appendHost(UInt32(0))        // nlmsg_pid: the kernel fills it in
        bytes.append(family)         // nfgen_family
        bytes.append(UInt8(NFNETLINK_V0))
        appendBig(resourceID)        // res_id, big endian
        return start
    }

    mutating func endMessage(_ start: Int) {
        patchHost(UInt32(bytes.count - start), at: start)
    }

    /// Appends a whole message built elsewhere (by libnftnl), padded to 4 bytes.
    mutating func appendMessage(_ message: ArraySlice<UInt8>) {
        bytes.append(contentsOf: message)
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    /// Drops everything written, keeping the capacity.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
    }

    /// Lets C code (libnftnl, libmnl) append to the message that starts at `start`: `body`
    /// gets its `nlmsghdr`, whose `nlmsg_len` covers what is written so far, with `room` zero
    /// bytes after it, and appends by advancing `nlmsg_len` (as `mnl_attr_put` does).
    mutating func appendInPlace(toMessageAt start: Int, room: Int, _ body: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        patchHost(UInt32(bytes.count - start), at: start)
        let limit = bytes.count + room
        bytes.append(contentsOf: repeatElement(0, count: room))
        let length = bytes.withUnsafeMutableBytes { raw -> Int in
            let nlh = (raw.baseAddress! + start).assumingMemoryBound(to: nlmsghdr.self)
            body(nlh)
            return Int(nlh.pointee.nlmsg_len)
        }
        precondition(start + length <= limit, "C code wrote past the room it was given")
        bytes.removeLast(limit - (start + length))
    }

    // MARK: Attributes

    mutating func beginNest(_ type: UInt16) -> Int {
        let start = bytes.count
        appendHost(UInt16(0))
        appendHost(type | UInt16(NLA_F_NESTED))
        return start
    }

    mutating func endNest(_ start: Int) {
        patchHost(UInt16(truncatingIfNeeded: bytes.count - start), at: start)
    }

    /// Bytes written since a nest started: nest lengths are 16 bits, so callers split before 64 KiB.
    func length(since start: Int) -> Int { bytes.count - start }

    mutating func put(_ type: UInt16, u32 value: UInt32) {
        putHeader(type, payload: 4)
        appendBig(value)
    }

    mutating func put(_ type: UInt16, u64 value: UInt64) {
        putHeader(type, payload: 8)
        appendBig(value)
    }

    mutating func put(_ type: UInt16, u8 value: UInt8) {
        putHeader(type, payload: 1)
        bytes.append(value)
        pad()
    }

    /// A NUL-terminated string attribute.
    mutating func put(_ type: UInt16, string: String) {
        let utf8 = string.utf8
        putHeader(type, payload: utf8.count + 1)
        bytes.append(contentsOf: utf8)
        bytes.append(0)
        pad()
    }

    mutating func put(_ type: UInt16, bytes data: some Collection<UInt8>) {
        putHeader(type, payload: data.count)
        bytes.append(contentsOf: data)
        pad()
    }

    /// An attribute whose payload is written by `body` (which must not add padding itself).
    mutating func put(_ type: UInt16, _ body: (inout NetlinkWriter) -> Void) {
        let start = bytes.count
        appendHost(UInt16(0))
        appendHost(type)
        body(&self)
        patchHost(UInt16(truncatingIfNeeded: bytes.count - start), at: start)
        pad()
    }

    // MARK: Raw payload helpers

    /// Appends a value's `width` bytes, in network order or (for host-order types such as
    /// `ct state`) little endian, the host order of every platform zonewall runs on.
    mutating func append(_ v: Value, bigEndian: Bool) {
        SetElementCodec.appendBytes(v, bigEndian: bigEndian, to: &bytes)
    }

    /// Appends bytes written before (`bytes(since:)`).
    mutating func append(_ other: [UInt8]) {
        bytes.append(contentsOf: other)
    }

    /// The bytes written from offset `start` on.
    func bytes(since start: Int) -> [UInt8] {
        Array(bytes[start...])
    }

    /// Appends `count` bytes from `start`.
    mutating func append(_ start: UnsafePointer<UInt8>, count: Int) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: start, count: count))
    }

    /// Appends the big-endian number of `count` bytes at `start`, plus one (it must not be all ones).
    mutating func appendSuccessor(_ start: UnsafePointer<UInt8>, count: Int) {
        let first = bytes.count
        append(start, count: count)
        var i = first + count - 1
        while i >= first {
            let (sum, carry) = bytes[i].addingReportingOverflow(1)
            bytes[i] = sum
            if !carry { break }
            i -= 1
        }
    }

    /// Appends `n` zero bytes.
    mutating func zeros(_ n: Int) {
        for _ in 0..<n { bytes.append(0) }
    }

    // Byte by byte: 2 to 8 bytes at a time, millions of times in a large batch, where
    // `append(contentsOf:)` of a raw buffer costs a generic call per integer.
    mutating func appendHost<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v) { for b in $0 { bytes.append(b) } }
    }

    mutating func appendBig<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { for b in $0 { bytes.append(b) } }
    }

    private mutating func putHeader(_ type: UInt16, payload: Int) {
        appendHost(UInt16(4 + payload))
        appendHost(type)
    }

    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    private mutating func patchHost<T: FixedWidthInteger>(_ v: T, at offset: Int) {
        withUnsafeBytes(of: v) { raw in
            for (i, b) in raw.enumerated() { bytes[offset + i] = b }
        }
    }
}

/// Numbers of the uapi's C enums, which Swift imports as structs with a raw value.
extension RawRepresentable where RawValue: BinaryInteger {
    /// The constant as a netlink attribute or message type.
    var u16: UInt16 { UInt16(truncatingIfNeeded: rawValue) }
    /// The constant as a 32-bit attribute value.
    var u32: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
}
