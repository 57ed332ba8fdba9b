import ZonePolicy

/// A set of ports as sorted, disjoint, non-adjacent ranges: every set has one spelling.
public struct PortSet: Hashable, Sendable {
    /// The ranges, merged to be maximal, in ascending order.
    public private(set) var ranges: [ClosedRange<UInt16>]

    /// Every destination port (1-65535): what a whole protocol (`tcp`) admits.
    ///
    /// Port 0 is not a destination a policy can name, so `tcp` and `tcp/1-65535` mean the same here.
    public static let all = PortSet(ranges: [1...65535])

    /// No port.
    public static let empty = PortSet(ranges: [])

    init(ranges: [ClosedRange<UInt16>]) { self.ranges = ranges }

    /// The set of the given ranges, merged.
    public init(_ ranges: some Sequence<ClosedRange<UInt16>>) {
        self.ranges = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = self.ranges.last, Int(r.lowerBound) <= Int(last.upperBound) + 1 {
                self.ranges[self.ranges.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                self.ranges.append(r)
            }
        }
    }

    /// Whether the set holds no port.
    public var isEmpty: Bool { ranges.isEmpty }
    /// Whether the set holds every port, as a whole protocol does.
    public var isAll: Bool { self == .all }
    /// How many ports the set holds.
    public var count: Int { ranges.reduce(0) { $0 + $1.count } }

    /// The ports in either set.
    public func union(_ o: PortSet) -> PortSet {
        if o.isEmpty { return self }
        if isEmpty { return o }
        return PortSet(ranges + o.ranges)
    }

    /// The ports in `self` and not in `o`.
    public func subtracting(_ o: PortSet) -> PortSet {
        guard !o.isEmpty, !isEmpty else { return self }
        var out: [ClosedRange<UInt16>] = []
        var j = 0
        for r in ranges {
            var lo = Int(r.lowerBound)
            let hi = Int(r.upperBound)
            while j < o.ranges.count, Int(o.ranges[j].upperBound) < lo { j += 1 }
            var k = j
            while lo <= hi, k < o.ranges.count, Int(o.ranges[k].lowerBound) <= hi {
                let s = o.ranges[k]
                if Int(s.lowerBound) > lo { out.append(UInt16(lo)...UInt16(Int(s.lowerBound) - 1)) }
                lo = max(lo, Int(s.upperBound) + 1)
                k += 1
            }
            if lo <= hi { out.append(UInt16(lo)...UInt16(hi)) }
        }
        return PortSet(ranges: out)
    }

    /// Whether the two sets share a port.
    public func overlaps(_ o: PortSet) -> Bool { !intersection(o).isEmpty }

    /// The ports in both sets.
    public func intersection(_ o: PortSet) -> PortSet { subtracting(subtracting(o)) }
}

/// What traffic one endpoint may send another, in a canonical form: equal meaning, equal value.
///
/// `any` is every port of TCP, UDP and SCTP, ICMP echo, and `other`: every other protocol and
/// ICMP message. Subtracting from `any` can leave `other` on its own, which the policy language
/// cannot write; it renders as `other`.
public struct Access: Hashable, Sendable {
    /// Ports per transport protocol; a protocol with no ports is absent.
    public private(set) var byProtocol: [TransportProtocol: PortSet] = [:]
    /// ICMP and ICMPv6 echo request.
    public var icmpEcho = false
    /// Every protocol other than TCP, UDP and SCTP, and every ICMP message other than echo.
    public var other = false

    /// Nothing.
    public static let none = Access()
    /// Everything: what `any` admits.
    public static let everything: Access = {
        var a = Access()
        for p in TransportProtocol.allCases { a.byProtocol[p] = .all }
        a.icmpEcho = true
        a.other = true
        return a
    }()

    /// Nothing admitted.
    public init() {}

    /// What one port spec admits.
    public init(_ spec: PortSpec) {
        switch spec {
        case .any: self = .everything
        case .icmpEcho: icmpEcho = true
        case .wholeProtocol(let p): byProtocol[p] = .all
        case .ports(let p, let r): byProtocol[p] = PortSet(ranges: [r])
        }
    }

    /// What a list of port specs admits.
    public init(_ specs: some Sequence<PortSpec>) {
        for s in specs { formUnion(Access(s)) }
    }

    /// Whether nothing is admitted.
    public var isEmpty: Bool { !icmpEcho && !other && byProtocol.isEmpty }
    /// Whether everything is admitted, as `any` does.
    public var isEverything: Bool { self == .everything }

    /// The ports of one protocol.
    public func ports(_ p: TransportProtocol) -> PortSet { byProtocol[p] ?? .empty }

    /// Adds what `o` admits.
    public mutating func formUnion(_ o: Access) {
        for (p, s) in o.byProtocol { byProtocol[p] = ports(p).union(s) }
        icmpEcho = icmpEcho || o.icmpEcho
        other = other || o.other
    }

    /// What either admits.
    public func union(_ o: Access) -> Access {
        var a = self
        a.formUnion(o)
        return a
    }

    /// What `self` admits and `o` does not.
    public func subtracting(_ o: Access) -> Access {
        var a = Access()
        for p in TransportProtocol.allCases {
            let s = ports(p).subtracting(o.ports(p))
            if !s.isEmpty { a.byProtocol[p] = s }
        }
        a.icmpEcho = icmpEcho && !o.icmpEcho
        a.other = other && !o.other
        return a
    }

    /// What both admit.
    public func intersection(_ o: Access) -> Access { subtracting(subtracting(o)) }

    /// Whether some traffic is admitted by both.
    public func overlaps(_ o: Access) -> Bool {
        (icmpEcho && o.icmpEcho) || (other && o.other) || TransportProtocol.allCases.contains { ports($0).overlaps(o.ports($0)) }
    }

    /// In the policy language, merged into maximal ranges and sorted: `tcp/22`, `tcp/8000-8099`,
    /// `udp` (a whole protocol), `icmp`, `any` (everything).
    public var specs: [String] {
        if isEverything { return ["any"] }
        var out: [String] = []
        for p in TransportProtocol.allCases.sorted() {
            let s = ports(p)
            if s.isAll { out.append(p.rawValue); continue }
            for r in s.ranges {
                out.append(r.lowerBound == r.upperBound ? "\(p)/\(r.lowerBound)" : "\(p)/\(r.lowerBound)-\(r.upperBound)")
            }
        }
        if icmpEcho { out.append("icmp") }
        if other { out.append("other") }
        return out
    }
}
