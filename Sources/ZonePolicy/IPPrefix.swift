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
    public var family: AddressFamily
    /// The network address; IPv4 lives in the low 32 bits.
    public var address: UInt128
    public var length: Int

    public init(family: AddressFamily, address: UInt128, length: Int) {
        self.family = family
        self.address = address
        self.length = length
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
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let addrText = String(parts[0])
        let family: AddressFamily
        let address: UInt128
        if let v4 = IPv4Text.parse(addrText) {
            family = .ipv4
            address = UInt128(v4)
        } else if let v6 = IPv6Format.parse(addrText) {
            family = .ipv6
            address = v6
        } else {
            return nil
        }
        var length = family.bits
        if parts.count == 2 {
            guard let l = Int(parts[1]), parts[1].allSatisfy(\.isASCIIDigit), (0...family.bits).contains(l) else { return nil }
            length = l
        }
        return IPPrefix(family: family, address: address, length: length)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    var isASCIIHexDigit: Bool { isASCIIDigit || ("a"..."f").contains(self) || ("A"..."F").contains(self) }
}

/// Dotted-quad IPv4 text, strictly: four decimal octets, no leading zeros.
enum IPv4Text {
    static func parse(_ s: String) -> UInt32? {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var v: UInt32 = 0
        for o in octets {
            guard !o.isEmpty, o.count <= 3, o.allSatisfy(\.isASCIIDigit),
                  o.count == 1 || o.first != "0", let n = UInt32(o), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }

    static func format(_ v: UInt32) -> String { "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)" }
}

/// IPv6 text: RFC 4291 input (with `::` and an embedded IPv4 tail), RFC 5952 output.
enum IPv6Format {
    static func parse(_ s: String) -> UInt128? {
        guard s.contains(":"), s.count <= 45 else { return nil }
        let halves = s.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        // An embedded IPv4 tail may only end the whole address (`::ffff:192.0.2.1`, not `192.0.2.1::`).
        func groups(_ part: String, endsAddress: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, g) in items.enumerated() {
                if endsAddress, i == items.count - 1, g.contains(".") {
                    guard let v4 = IPv4Text.parse(String(g)) else { return nil }
                    out += [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
                } else {
                    guard (1...4).contains(g.count), g.allSatisfy(\.isASCIIHexDigit), let n = UInt16(g, radix: 16) else { return nil }
                    out.append(n)
                }
            }
            return out
        }
        guard let head = groups(halves[0], endsAddress: halves.count == 1) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1], endsAddress: true), head.count + tail.count <= 7 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    static func format(_ v: UInt128) -> String {
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
