/// A transport protocol a port spec names.
public enum TransportProtocol: String, Hashable, Sendable, Comparable, CaseIterable {
    case tcp, udp, sctp

    /// IANA protocol number.
    public var number: UInt8 {
        switch self {
        case .tcp: 6
        case .udp: 17
        case .sctp: 132
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.number < b.number }
}

/// What traffic an allow rule admits: `tcp/443`, `tcp/8000-8099`, `udp`, `icmp`, `any`.
public enum PortSpec: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// `tcp/N` or `tcp/N-M`; a whole protocol (`tcp`) is `1...65535`… kept apart as `.protocol`.
    case ports(TransportProtocol, ClosedRange<UInt16>)
    /// `tcp`, `udp`, `sctp`: every port.
    case wholeProtocol(TransportProtocol)
    /// `icmp`: echo request, IPv4 and IPv6.
    case icmpEcho
    /// `any`: all traffic.
    case any

    public var description: String {
        switch self {
        case .ports(let p, let r): r.lowerBound == r.upperBound ? "\(p)/\(r.lowerBound)" : "\(p)/\(r.lowerBound)-\(r.upperBound)"
        case .wholeProtocol(let p): p.rawValue
        case .icmpEcho: "icmp"
        case .any: "any"
        }
    }

    /// Whether every packet this spec admits is also admitted by `other`.
    public func isCovered(by other: PortSpec) -> Bool {
        switch (self, other) {
        case (_, .any): true
        case (.icmpEcho, .icmpEcho): true
        case (.wholeProtocol(let a), .wholeProtocol(let b)): a == b
        case (.ports(let a, _), .wholeProtocol(let b)): a == b
        case (.ports(let a, let r), .ports(let b, let s)): a == b && s.lowerBound <= r.lowerBound && r.upperBound <= s.upperBound
        default: false
        }
    }

    private var order: (Int, UInt8, UInt16, UInt16) {
        switch self {
        case .ports(let p, let r): (0, p.number, r.lowerBound, r.upperBound)
        case .wholeProtocol(let p): (1, p.number, 0, 0)
        case .icmpEcho: (2, 0, 0, 0)
        case .any: (3, 0, 0, 0)
        }
    }

    public static func < (a: PortSpec, b: PortSpec) -> Bool { a.order < b.order }

    /// Parses a spec; on failure returns a message and an optional hint.
    ///
    /// Letter case does not matter (`TCP/22`, `Any`). `ping` is another name for `icmp`. There is
    /// no IPv6-only echo spec: `icmpv6` (and `icmp6`, `ipv6-icmp`) is refused rather than read as
    /// `icmp`, which would also admit IPv4 echo.
    public static func parse(_ text: String) -> Result<PortSpec, PortSpecError> {
        let s = text.lowercased()
        if s == "any" { return .success(.any) }
        if s == "icmp" || s == "ping" { return .success(.icmpEcho) }
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let protoText = String(parts[0])
        if ["icmpv6", "icmp6", "ipv6-icmp"].contains(protoText) {
            return .failure(PortSpecError(message: "'\(text)': there is no IPv6-only echo spec",
                                          hint: "icmp covers echo for both IPv4 and IPv6; write 'icmp'"))
        }
        if protoText == "icmp" || protoText == "ping" {
            return .failure(PortSpecError(message: "'\(text)': \(protoText) takes no port", hint: "write 'icmp' (echo request) or 'any'"))
        }
        guard let proto = TransportProtocol(rawValue: protoText) else {
            return .failure(PortSpecError(message: "'\(text)': unknown protocol '\(protoText)'",
                                          hint: "use tcp, udp, sctp (optionally /PORT or /LOW-HIGH), icmp or any"))
        }
        guard parts.count == 2 else { return .success(.wholeProtocol(proto)) }
        if parts[1].hasPrefix("-"), parts[1].dropFirst().allSatisfy(\.isASCIIDigit), !parts[1].dropFirst().isEmpty {
            return .failure(PortSpecError(message: "'\(text)': port \(parts[1]) is out of range", hint: "ports are 1..65535"))
        }
        let range = parts[1].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        func port(_ p: Substring) -> Result<UInt16, PortSpecError> {
            guard !p.isEmpty, p.allSatisfy(\.isASCIIDigit), p.count <= 6, let n = Int(p) else {
                return .failure(PortSpecError(message: "'\(text)': '\(p)' is not a port number", hint: nil))
            }
            guard (1...65535).contains(n) else {
                return .failure(PortSpecError(message: "'\(text)': port \(n) is out of range", hint: "ports are 1..65535"))
            }
            return .success(UInt16(n))
        }
        switch (port(range[0]), range.count == 2 ? port(range[1]) : port(range[0])) {
        case (.failure(let e), _), (_, .failure(let e)): return .failure(e)
        case (.success(let lo), .success(let hi)):
            guard lo <= hi else {
                return .failure(PortSpecError(message: "'\(text)': range \(lo)-\(hi) is reversed", hint: "write \(proto)/\(hi)-\(lo)"))
            }
            return .success(.ports(proto, lo...hi))
        }
    }
}

/// Why a port spec did not parse.
public struct PortSpecError: Error, Hashable, Sendable {
    public var message: String
    public var hint: String?
}
