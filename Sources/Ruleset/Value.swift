/// A fixed-width unsigned integer of up to 16 bytes, in network (big-endian) order.
///
/// Addresses, ports, protocol numbers and marks are all `Value`s. They are stored inline,
/// so a rule set with a million elements does not allocate a million byte arrays.
public struct Value: Hashable, Sendable, Comparable {
    /// The upper 64 bits (only used for widths above 8 bytes).
    public var high: UInt64
    /// The lower 64 bits.
    public var low: UInt64
    /// Width in bytes, 1...16.
    public let width: Int

    /// A value of `width` bytes holding `integer`.
    public init(_ integer: UInt64, width: Int) {
        precondition((1...16).contains(width))
        self.high = 0
        self.low = width >= 8 ? integer : integer & ((1 << (UInt64(width) * 8)) - 1)
        self.width = width
    }

    /// A 128-bit value split into halves; bits above `width` bytes are dropped.
    public init(high: UInt64, low: UInt64, width: Int) {
        precondition((1...16).contains(width))
        self.high = width >= 16 ? high : width > 8 ? high & ((1 << (UInt64(width - 8) * 8)) - 1) : 0
        self.low = width >= 8 ? low : low & ((1 << (UInt64(width) * 8)) - 1)
        self.width = width
    }

    /// The value as a 128-bit integer.
    public var uint128: UInt128 { (UInt128(high) << 64) | UInt128(low) }

    /// A value from a 128-bit integer.
    @_disfavoredOverload
    public init(_ v: UInt128, width: Int) {
        self.init(high: UInt64(truncatingIfNeeded: v >> 64), low: UInt64(truncatingIfNeeded: v), width: width)
    }

    /// The largest value of this width.
    public static func max(width: Int) -> Value {
        width >= 16 ? Value(high: .max, low: .max, width: 16)
            : width > 8 ? Value(high: (1 << UInt64((width - 8) * 8)) - 1, low: .max, width: width)
            : Value(width == 8 ? .max : (1 << UInt64(width * 8)) - 1, width: width)
    }

    /// The big-endian bytes, exactly `width` of them.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(width)
        appendBytes(to: &out)
        return out
    }

    /// A value from big-endian bytes (at most 16). Inlinable, so that decoders in other
    /// modules read slices and buffers in place, without a generic call per byte.
    @inlinable
    public init(bytes: some Collection<UInt8>) {
        var v: UInt128 = 0
        for b in bytes { v = (v << 8) | UInt128(b) }
        self.init(v, width: bytes.count)
    }

    /// The next value, or nil at the maximum.
    public var successor: Value? { self == .max(width: width) ? nil : Value(uint128 + 1, width: width) }
    /// The previous value, or nil at zero.
    public var predecessor: Value? { uint128 == 0 ? nil : Value(uint128 - 1, width: width) }

    public static func < (a: Value, b: Value) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }
}

/// A closed range of values `lo...hi` of one width. A single value has `lo == hi`.
public struct ValueRange: Hashable, Sendable, Comparable {
    public var lo: Value
    public var hi: Value

    public init(_ lo: Value, _ hi: Value) {
        precondition(lo.width == hi.width && lo <= hi)
        self.lo = lo
        self.hi = hi
    }

    public init(_ single: Value) { self.init(single, single) }

    public var isSingle: Bool { lo == hi }

    /// The whole range of a width.
    public static func all(width: Int) -> ValueRange {
        ValueRange(Value(high: 0, low: 0, width: width), .max(width: width))
    }

    public func contains(_ v: Value) -> Bool { lo <= v && v <= hi }
    public func contains(_ r: ValueRange) -> Bool { lo <= r.lo && r.hi <= hi }

    public static func < (a: ValueRange, b: ValueRange) -> Bool {
        a.lo != b.lo ? a.lo < b.lo : a.hi < b.hi
    }

    /// When the range is exactly one CIDR prefix, its length in bits.
    public var prefixLength: Int? {
        let bits = lo.width * 8
        let size = hi.uint128 &- lo.uint128 &+ 1   // 0 means the whole 2^128 space
        if size == 0 { return bits == 128 && lo.uint128 == 0 ? 0 : nil }
        guard size & (size &- 1) == 0, lo.uint128 & (size &- 1) == 0 else { return nil }
        let hostBits = size.trailingZeroBitCount
        return hostBits > bits ? nil : bits - hostBits
    }
}

extension Value {
    /// Appends the value's `width` big-endian bytes.
    @inline(__always)
    func appendBytes(to out: inout [UInt8]) {
        if width <= 8 {
            for k in stride(from: width - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: low >> (UInt64(k) * 8))) }
        } else {
            for k in stride(from: width - 9, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: high >> (UInt64(k) * 8))) }
            for k in stride(from: 7, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: low >> (UInt64(k) * 8))) }
        }
    }
}
