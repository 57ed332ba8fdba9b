import Foundation
import ZonePolicy

/// Why the kernel logged a packet: the `log` statement's prefix.
public enum LogVerdict: String, Hashable, Sendable, Codable, CaseIterable {
    /// Denied by the policy (logged when `log_denied: true`).
    case denied
    /// Denied by the policy but passed: an end is in an audit zone.
    case audit
}

/// The netfilter hook a packet was logged at, in the policy's vocabulary.
public enum LogHook: String, Hashable, Sendable, Codable {
    case prerouting, input, forward, output, postrouting

    /// The hook for the kernel's `NF_INET_*` number, nil for anything else.
    public init?(kernelNumber: UInt8) {
        switch kernelNumber {
        case 0: self = .prerouting
        case 1: self = .input
        case 2: self = .forward
        case 3: self = .output
        case 4: self = .postrouting
        default: return nil
        }
    }

    /// What an address outside every zone means at this hook (see `Evaluator.classify`).
    public var context: HookContext {
        switch self {
        case .input: .input
        case .output: .output
        case .prerouting, .forward, .postrouting: .forward
        }
    }
}

/// One packet as the kernel logged it: decoded, not yet classified into zones.
public struct LoggedPacket: Hashable, Sendable, Codable {
    /// When the kernel logged it (receive time when the kernel gives none).
    public var time: Date
    /// `denied` or `audit`, from the log prefix.
    public var verdict: LogVerdict
    /// Where it was logged.
    public var hook: LogHook
    /// Source address (full length).
    public var src: IPPrefix
    /// Destination address (full length).
    public var dst: IPPrefix
    /// IP protocol number (after IPv6 extension headers).
    public var proto: UInt8
    /// Destination port for TCP, UDP, SCTP and UDP-Lite; the ICMP type for ICMP and ICMPv6.
    public var port: UInt16?

    /// A packet from its fields.
    public init(time: Date, verdict: LogVerdict, hook: LogHook, src: IPPrefix, dst: IPPrefix, proto: UInt8, port: UInt16?) {
        self.time = time
        self.verdict = verdict
        self.hook = hook
        self.src = src
        self.dst = dst
        self.proto = proto
        self.port = port
    }

    /// Whether `port` holds an ICMP type rather than a port.
    public var isICMP: Bool { proto == 1 || proto == 58 }

    /// The flow as the evaluator sees it.
    public var flow: Flow {
        isICMP ? Flow(proto: proto, icmpType: port.map { UInt8(truncatingIfNeeded: $0) }) : Flow(proto: proto, port: port)
    }

    enum CodingKeys: String, CodingKey { case time, verdict, hook, src, dst, proto, port }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        time = try FlowTime.parse(c.decode(String.self, forKey: .time))
        verdict = try c.decode(LogVerdict.self, forKey: .verdict)
        hook = try c.decode(LogHook.self, forKey: .hook)
        src = try FlowRecord.address(c.decode(String.self, forKey: .src), key: "src")
        dst = try FlowRecord.address(c.decode(String.self, forKey: .dst), key: "dst")
        proto = try ProtocolName.number(c.decode(String.self, forKey: .proto))
        // Decoded wide and checked here, so that 70000 is named as an out-of-range port, not as bad JSON.
        let isICMP = proto == 1 || proto == 58
        let limit = isICMP ? 255 : 65535
        let what = isICMP ? "an ICMP type, 0-255" : "a port, 0-65535"
        port = try FlowRecord.decodeWhole(c, .port, what: what, range: 0...limit).map { UInt16($0) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(FlowTime.format(time), forKey: .time)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(hook, forKey: .hook)
        try c.encode(src.description, forKey: .src)
        try c.encode(dst.description, forKey: .dst)
        try c.encode(ProtocolName.name(proto), forKey: .proto)
        try c.encode(port, forKey: .port)
    }
}

/// A logged flow classified with the policy: what `zonewall log` prints, one per line with `--json`.
public struct FlowRecord: Hashable, Sendable, Codable {
    /// The (last) packet of the flow.
    public var packet: LoggedPacket
    /// Zone name, `world` or `host`.
    public var from: String
    /// Zone name, `world` or `host`.
    public var to: String
    /// Packets of this flow this record stands for: the first of a second alone, then its repeats.
    public var count: Int

    /// A record from its fields.
    public init(packet: LoggedPacket, from: String, to: String, count: Int) {
        self.packet = packet
        self.from = from
        self.to = to
        self.count = count
    }

    enum CodingKeys: String, CodingKey { case time, verdict, hook, src, dst, proto, port, from, to, count }

    public init(from decoder: any Decoder) throws {
        packet = try LoggedPacket(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        from = try c.decode(String.self, forKey: .from)
        to = try c.decode(String.self, forKey: .to)
        count = try Self.decodeWhole(c, .count, what: "a packet count of at least 1", range: 1...Int.max) ?? {
            throw DecodingError.keyNotFound(CodingKeys.count, .init(codingPath: [], debugDescription: "missing key 'count'"))
        }()
    }

    /// A whole number in `range` under `key` (nil when absent or null); anything else is a
    /// `dataCorrupted` error naming the key, what it must be, and what was found.
    static func decodeWhole<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K, what: String,
                                          range: ClosedRange<Int>) throws -> Int? {
        guard c.contains(key), !(try c.decodeNil(forKey: key)) else { return nil }
        func bad(_ found: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: [key], debugDescription: "'\(key.stringValue)' must be \(what), found \(found)"))
        }
        if let n = try? c.decode(Int.self, forKey: key) {
            guard range.contains(n) else { throw bad(String(n)) }
            return n
        }
        if let d = try? c.decode(Double.self, forKey: key) { throw bad(d.description) }
        if let s = try? c.decode(String.self, forKey: key) { throw bad("the string \"\(s)\"") }
        throw bad("a value of another type")
    }

    public func encode(to encoder: any Encoder) throws {
        try packet.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encode(count, forKey: .count)
    }

    /// One JSON object, keys in a fixed order, no newline.
    public var jsonLine: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: e.encode(self), as: UTF8.self)) ?? "{}"
    }

    static func address(_ text: String, key: String) throws -> IPPrefix {
        guard let p = IPPrefix.parse(text), p.length == p.family.bits else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "'\(key)' is not an address: \(text)"))
        }
        return p
    }
}

/// IP protocol names as nft writes them.
public enum ProtocolName {
    static let names: [UInt8: String] = [1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 136: "udplite", 47: "gre", 50: "esp", 51: "ah"]

    /// `tcp`, `icmpv6`, or the number for an unnamed protocol.
    public static func name(_ p: UInt8) -> String { names[p] ?? String(p) }

    /// The number for a name or a decimal number.
    public static func number(_ s: String) throws -> UInt8 {
        if let n = UInt8(s) { return n }
        if let (n, _) = names.first(where: { $0.value == s }) { return n }
        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "unknown protocol '\(s)'"))
    }
}

/// RFC 3339 UTC timestamps with milliseconds.
///
/// Formatted and parsed by hand: Foundation's ISO 8601 parser takes about a millisecond a
/// call here, which alone would hold a 10,000 packets/s log to a few hundred records a second.
public enum FlowTime {
    private static let lock = NSLock()
    nonisolated(unsafe) private static let plain = ISO8601DateFormatter()

    /// `2026-11-30T06:40:01.123Z`.
    public static func format(_ d: Date) -> String {
        let ms = Int64((d.timeIntervalSince1970 * 1000).rounded(.down))
        let days = Int64((Double(ms) / 86_400_000).rounded(.down))
        let msOfDay = ms - days * 86_400_000
        let (y, m, dd) = civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let frac = msOfDay % 1000
        let fracText = frac < 10 ? "00\(frac)" : frac < 100 ? "0\(frac)" : "\(frac)"
        return "\(y)-\(two(m))-\(two(dd))T\(two(msOfDay / 3_600_000)):\(two(msOfDay / 60_000 % 60)):\(two(msOfDay / 1000 % 60)).\(fracText)Z"
    }

    /// Parses `format`'s output (any number of fractional digits, `Z`), else any RFC 3339 time.
    public static func parse(_ s: String) throws -> Date {
        if let d = fast(Array(s.utf8)) { return d }
        if let d = lock.withLock({ plain.date(from: s) }) { return d }
        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "'time' is not an RFC 3339 time: \(s)"))
    }

    static func fast(_ b: [UInt8]) -> Date? {
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[4] == 45, b[7] == 45, b[10] == 84, b[13] == 58, b[16] == 58 else { return nil }
        func num(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in r { guard b[i] >= 48 && b[i] <= 57 else { return nil }; v = v * 10 + Int64(b[i] - 48) }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(14..<16),
              let sec = num(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61 else { return nil }
        var frac = 0.0
        if b.count > 20 {
            guard b[19] == 46, b.count - 21 <= 9, let f = num(20..<(b.count - 1)) else { return nil }
            frac = Double(f) / pow(10, Double(b.count - 21))
        }
        let days = daysFromCivil(y, mo, d)
        return Date(timeIntervalSince1970: Double(days * 86400 + h * 3600 + mi * 60 + sec) + frac)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
