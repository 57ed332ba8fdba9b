import Foundation

/// An IPv4 or IPv6 address family.
public enum AddressFamily: String, Hashable, Sendable, Comparable, CaseIterable {
    case ipv4, ipv6

    /// Address width in bits.
    public var bits: Int { self == .ipv4 ? 32 : 128 }

    public static func < (a: AddressFamily, b: AddressFamily) -> Bool { a == .ipv4 && b == .ipv6 }
}

/// An address or CIDR prefix, IPv4 or IPv6. An address is a prefix of full length.
public struct IPPrefix: Hashable, Sendable, Comparable, CustomStringConvertible {
    // Stored as two words and a byte: 24 bytes a prefix (a UInt128 would align it to 16 and
    // take 32), and a policy can list 100,000s.
    private var high: UInt64
    private var low: UInt64
    private var storedLength: UInt8
    public var family: AddressFamily

    /// The network address; IPv4 lives in the low 32 bits.
    public var address: UInt128 {
        get { UInt128(high) << 64 | UInt128(low) }
        set {
            high = UInt64(truncatingIfNeeded: newValue >> 64)
            low = UInt64(truncatingIfNeeded: newValue)
        }
    }

    /// Prefix length in bits, 0 to the family's width.
    public var length: Int {
        get { Int(storedLength) }
        set { storedLength = UInt8(clamping: newValue) }
    }

    public init(family: AddressFamily, address: UInt128, length: Int) {
        self.family = family
        self.high = UInt64(truncatingIfNeeded: address >> 64)
        self.low = UInt64(truncatingIfNeeded: address)
        self.storedLength = UInt8(clamping: length)
    }

    /// The host-bit mask of this prefix.
    var hostMask: UInt128 {
        let hostBits = family.bits - length
        return hostBits == 128 ? .max : (UInt128(1) << UInt128(hostBits)) - 1
    }

    /// First address.
    public var first: UInt128 { address & ~hostMask }
    /// Last address.
    public var last: UInt128 { first | hostMask }

    /// True when the prefix has bits set below its length (`192.0.2.1/24`).
    public var hasHostBits: Bool { address & hostMask != 0 }

    /// The same prefix with host bits cleared.
    public var normalized: IPPrefix { IPPrefix(family: family, address: first, length: length) }

    public func contains(_ a: UInt128) -> Bool { first <= a && a <= last }
    public func contains(_ p: IPPrefix) -> Bool { p.family == family && p.length >= length && contains(p.address) }

    public var description: String {
        let addr = family == .ipv4 ? IPv4Text.format(UInt32(truncatingIfNeeded: address)) : IPv6Format.format(address)
        return length == family.bits ? addr : "\(addr)/\(length)"
    }

    public static func < (a: IPPrefix, b: IPPrefix) -> Bool {
        (a.family, a.address, a.length) < (b.family, b.address, b.length)
    }

    /// Parses `192.0.2.0/24`, `2001:db8::1`, …; nil when malformed. Host bits are kept
    /// so that the caller can report them.
    public static func parse(_ text: String) -> IPPrefix? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    /// The parser proper, over the text's UTF-8 bytes: a policy holds 100,000s of prefixes, and
    /// `Character`-level splitting dominated loading it.
    static func parse(bytes: UnsafeBufferPointer<UInt8>) -> IPPrefix? {
        let slash = bytes.firstIndex(of: UInt8(ascii: "/"))
        let addr = UnsafeBufferPointer(rebasing: bytes[..<(slash ?? bytes.count)])
        let family: AddressFamily
        let address: UInt128
        if let v4 = IPv4Text.parse(bytes: addr) {
            family = .ipv4
            address = UInt128(v4)
        } else if let v6 = IPv6Format.parse(bytes: addr) {
            family = .ipv6
            address = v6
        } else {
            return nil
        }
        var length = family.bits
        if let slash {
            let digits = bytes[(slash + 1)...]
            guard !digits.isEmpty else { return nil }
            var l = 0
            for b in digits {
                guard b.isASCIIDigit else { return nil }
                l = min(l * 10 + Int(b - UInt8(ascii: "0")), 1000)
            }
            guard l <= family.bits else { return nil }
            length = l
        }
        return IPPrefix(family: family, address: address, length: length)
    }
}

extension UInt8 {
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    /// The value of a hexadecimal digit, or nil.
    var hexValue: UInt8? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): self - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): self - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): self - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// Dotted-quad IPv4 text, strictly: four decimal octets, no leading zeros.
enum IPv4Text {
    static func parse(_ s: String) -> UInt32? {
        var s = s
        return s.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes: some Collection<UInt8>) -> UInt32? {
        var v: UInt32 = 0, octets = 0
        var digits = 0, octet: UInt32 = 0, leadingZero = false
        func endOctet() -> Bool {
            guard digits > 0, octet <= 255, !(leadingZero && digits > 1) else { return false }
            v = v << 8 | octet
            octets += 1
            return true
        }
        for b in bytes {
            if b == UInt8(ascii: ".") {
                guard octets < 3, endOctet() else { return nil }
                digits = 0; octet = 0
            } else {
                guard b.isASCIIDigit, digits < 3 else { return nil }
                if digits == 0 { leadingZero = b == UInt8(ascii: "0") }
                octet = octet * 10 + UInt32(b - UInt8(ascii: "0"))
                digits += 1
            }
        }
        guard endOctet(), octets == 4 else { return nil }
        return v
    }

    static func format(_ v: UInt32) -> String { "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)" }
}

/// IPv6 text: RFC 4291 input (with `::` and an embedded IPv4 tail), RFC 5952 output.
enum IPv6Format {
    static func parse(_ s: String) -> UInt128? {
        var s = s
        return s.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes s: UnsafeBufferPointer<UInt8>) -> UInt128? {
        let colon = UInt8(ascii: ":")
        guard s.count <= 45, s.contains(colon) else { return nil }
        // At most one `::`, splitting the address into the groups before and after it.
        var gap: Int?
        var i = 0
        while i + 1 < s.count {
            if s[i] == colon && s[i + 1] == colon {
                guard gap == nil else { return nil }
                gap = i
                i += 2
            } else {
                i += 1
            }
        }
        // The groups of one side, `a:b:c`; an embedded IPv4 tail may only end the whole address.
        func groups(_ part: Slice<UnsafeBufferPointer<UInt8>>, endsAddress: Bool, into out: inout [UInt16]) -> Bool {
            if part.isEmpty { return true }
            var start = part.startIndex
            while true {
                let end = part[start...].firstIndex(of: colon) ?? part.endIndex
                let g = part[start..<end]
                if endsAddress, end == part.endIndex, g.contains(UInt8(ascii: ".")) {
                    guard let v4 = IPv4Text.parse(bytes: g) else { return false }
                    out += [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
                } else {
                    guard (1...4).contains(g.count) else { return false }
                    var n: UInt16 = 0
                    for b in g {
                        guard let h = b.hexValue else { return false }
                        n = n << 4 | UInt16(h)
                    }
                    out.append(n)
                }
                if end == part.endIndex { return true }
                start = end + 1
            }
        }
        var head: [UInt16] = [], tail: [UInt16] = []
        head.reserveCapacity(8)
        if let gap {
            guard groups(s[..<gap], endsAddress: false, into: &head),
                  groups(s[(gap + 2)...], endsAddress: true, into: &tail),
                  head.count + tail.count <= 7 else { return nil }
            head += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard groups(s[...], endsAddress: true, into: &head) else { return nil }
        }
        guard head.count == 8 else { return nil }
        return head.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    static func format(_ v: UInt128) -> String {
        // RFC 5952 §5: an IPv4-mapped address keeps its dotted tail, as inet_ntop and nft write it.
        if v >> 32 == 0xffff { return "::ffff:" + IPv4Text.format(UInt32(truncatingIfNeeded: v)) }
        let groups = (0..<8).map { UInt16(truncatingIfNeeded: v >> (UInt128(7 - $0) * 16)) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        func hex(_ g: ArraySlice<UInt16>) -> String { g.map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(groups[...]) }
        return hex(groups[0..<bestStart]) + "::" + hex(groups[(bestStart + bestLen)...])
    }
}
