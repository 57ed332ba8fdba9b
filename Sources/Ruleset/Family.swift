/// An nftables address family (`NFPROTO_*`).
public struct Family: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let inet = Family(rawValue: 1)
    public static let ipv4 = Family(rawValue: 2)
    public static let arp = Family(rawValue: 3)
    public static let netdev = Family(rawValue: 5)
    public static let bridge = Family(rawValue: 7)
    public static let ipv6 = Family(rawValue: 10)

    public var description: String {
        switch self {
        case .inet: "inet"
        case .ipv4: "ip"
        case .ipv6: "ip6"
        case .arp: "arp"
        case .bridge: "bridge"
        case .netdev: "netdev"
        default: "family(\(rawValue))"
        }
    }
}

/// A netfilter hook (`NF_INET_*`).
public struct Hook: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let prerouting = Hook(rawValue: 0)
    public static let input = Hook(rawValue: 1)
    public static let forward = Hook(rawValue: 2)
    public static let output = Hook(rawValue: 3)
    public static let postrouting = Hook(rawValue: 4)

    public var description: String {
        switch self {
        case .prerouting: "prerouting"
        case .input: "input"
        case .forward: "forward"
        case .output: "output"
        case .postrouting: "postrouting"
        default: "hook(\(rawValue))"
        }
    }
}

/// A chain's type: `filter`, `nat` or `route`.
public struct ChainType: RawRepresentable, Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let filter = ChainType(rawValue: "filter")
    public static let nat = ChainType(rawValue: "nat")
    public static let route = ChainType(rawValue: "route")
}
