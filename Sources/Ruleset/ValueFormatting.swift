/// Renders values the way nft writes them, so the text is valid `nft -f` input.
extension DataType {
    /// Text for one value of this type.
    public func format(_ v: Value) -> String {
        switch self {
        case .ipv4Address:
            return DataType.dottedQuad(UInt32(truncatingIfNeeded: v.low))
        case .ipv6Address:
            return IPv6Text.format(v.uint128)
        case .inetProtocol:
            return ProtocolNames.name(UInt8(truncatingIfNeeded: v.low))
        case .nfProto:
            return v.low == 2 ? "ipv4" : v.low == 10 ? "ipv6" : "\(v.low)"
        case .icmpType:
            return v.low == 8 ? "echo-request" : v.low == 0 ? "echo-reply" : "\(v.low)"
        case .icmpv6Type:
            return v.low == 128 ? "echo-request" : v.low == 129 ? "echo-reply" : "\(v.low)"
        case .ctState:
            let names: [(UInt64, String)] = [(1, "invalid"), (2, "established"), (4, "related"), (8, "new"), (64, "untracked")]
            let parts = names.filter { v.low & $0.0 != 0 }.map(\.1)
            return parts.isEmpty ? "0x0" : parts.joined(separator: ",")
        case .mark:
            return "0x" + String(v.low, radix: 16).leftPadded(to: 8)
        case .ifname:
            return "\"" + InterfaceName.text(v) + "\""
        default:
            return "\(v.low)"
        }
    }

    /// Text for a range of this type: a CIDR prefix for address ranges that are one, else `lo-hi`.
    public func format(_ r: ValueRange) -> String {
        var s = ""
        append(r, to: &s)
        return s
    }

    /// `format(r)` appended to `s`, with no string for the range as a whole (a plan prints
    /// hundreds of thousands of these).
    public func append(_ r: ValueRange, to s: inout String) {
        if r.isSingle { s += format(r.lo); return }
        if self == .ifname, let prefix = InterfaceName.wildcardPrefix(r) {
            s += "\""; s += prefix; s += "*\""
            return
        }
        s += format(r.lo)
        if self == .ipv4Address || self == .ipv6Address, let len = r.prefixLength {
            s += "/"; s += String(len)
            return
        }
        s += "-"
        s += format(r.hi)
    }
}

extension DataType {
    /// Dotted-quad IPv4 text, written byte by byte (at most 15, a small string: no allocation).
    static func dottedQuad(_ x: UInt32) -> String {
        String(unsafeUninitializedCapacity: 15) { out in
            var n = 0
            for shift in [24, 16, 8, 0] as [UInt32] {
                let b = UInt8(truncatingIfNeeded: x >> shift)
                if b >= 100 { out[n] = 0x30 + b / 100; n += 1 }
                if b >= 10 { out[n] = 0x30 + (b / 10) % 10; n += 1 }
                out[n] = 0x30 + b % 10; n += 1
                if shift > 0 { out[n] = 0x2e; n += 1 }
            }
            return n
        }
    }
}

/// Protocol names nft knows (`/etc/protocols` spelling).
enum ProtocolNames {
    static func name(_ p: UInt8) -> String {
        switch p {
        case 1: "icmp"
        case 6: "tcp"
        case 17: "udp"
        case 58: "ipv6-icmp"
        case 132: "sctp"
        default: "\(p)"
        }
    }
}

/// IPv6 text in RFC 5952 form: lowercase, longest zero run compressed.
public enum IPv6Text {
    public static func format(_ v: UInt128) -> String {
        // RFC 5952 §5: an IPv4-mapped address keeps its dotted tail, as inet_ntop and nft write it.
        if v >> 32 == 0xffff { return "::ffff:" + DataType.dottedQuad(UInt32(truncatingIfNeeded: v)) }
        // Written byte by byte: a plan prints hundreds of thousands of addresses.
        var groups: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &groups) { raw in
            let g = raw.bindMemory(to: UInt16.self)
            for k in 0..<8 { g[k] = UInt16(truncatingIfNeeded: v >> (UInt128(7 - k) * 16)) }
            var bestStart = -1, bestLen = 0, i = 0
            while i < 8 {
                if g[i] == 0 {
                    var j = i
                    while j < 8 && g[j] == 0 { j += 1 }
                    if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                    i = j
                } else { i += 1 }
            }
            return String(unsafeUninitializedCapacity: 39) { out in
                var n = 0
                func put(_ c: UInt8) { out[n] = c; n += 1 }
                func group(_ x: UInt16) {
                    var started = false
                    for shift in stride(from: 12, through: 0, by: -4) {
                        let d = UInt8((x >> UInt16(shift)) & 0xf)
                        if d == 0 && !started && shift > 0 { continue }
                        started = true
                        put(d < 10 ? 0x30 + d : 0x57 + d)
                    }
                }
                var k = 0
                while k < 8 {
                    if k == bestStart {
                        put(0x3a); put(0x3a)  // "::"
                        k += bestLen
                        continue
                    }
                    if k > 0 && k != bestStart + bestLen { put(0x3a) }
                    group(g[k])
                    k += 1
                }
                return n
            }
        }
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// Interface names as nft stores them: 16 bytes, NUL padded; `prefix*` is the range of every name with that prefix.
public enum InterfaceName {
    /// The value of an exact interface name (at most 15 bytes).
    public static func value(_ name: String) -> Value {
        var bytes = Array(name.utf8.prefix(15))
        bytes += [UInt8](repeating: 0, count: 16 - bytes.count)
        return Value(bytes: bytes)
    }

    /// `prefix*`: from the prefix padded with 0x00 to the prefix padded with 0xff.
    public static func wildcard(_ prefix: String) -> ValueRange {
        let p = Array(prefix.utf8.prefix(15))
        return ValueRange(Value(bytes: p + [UInt8](repeating: 0, count: 16 - p.count)),
                          Value(bytes: p + [UInt8](repeating: 0xff, count: 16 - p.count)))
    }

    /// The range for a pattern as zones write it: a name, or a prefix with a trailing `*`.
    public static func range(_ pattern: String) -> ValueRange {
        pattern.hasSuffix("*") ? wildcard(String(pattern.dropLast())) : ValueRange(value(pattern))
    }

    /// The name in a value, up to its first NUL.
    public static func text(_ v: Value) -> String {
        String(decoding: v.bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The prefix of a wildcard range, or nil if the range is not one.
    static func wildcardPrefix(_ r: ValueRange) -> String? {
        let lo = r.lo.bytes, hi = r.hi.bytes
        guard lo.count == 16, hi.count == 16 else { return nil }
        var n = 0
        while n < 16, lo[n] == hi[n], lo[n] != 0 { n += 1 }
        guard lo[n...].allSatisfy({ $0 == 0 }), hi[n...].allSatisfy({ $0 == 0xff }) else { return nil }
        return String(decoding: lo[..<n], as: UTF8.self)
    }
}
