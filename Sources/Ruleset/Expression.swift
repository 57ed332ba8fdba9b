/// A packet field or piece of packet metadata that a rule reads.
///
/// Each selector lowers to a fixed kernel expression sequence in `Netfilter`, including
/// the protocol dependency nft adds (for example `ip saddr` in an `inet` table first
/// checks `meta nfproto ipv4`).
public enum Selector: String, Hashable, Sendable, CaseIterable {
    case ipSaddr = "ip saddr"
    case ipDaddr = "ip daddr"
    case ip6Saddr = "ip6 saddr"
    case ip6Daddr = "ip6 daddr"
    case l4proto = "meta l4proto"
    case nfproto = "meta nfproto"
    case thDport = "th dport"
    /// The two bytes at transport offset 0: the source port for TCP, UDP and SCTP; for ICMP
    /// the type and code, so one concatenated lookup can tell echo requests from ports.
    case thSport = "th sport"
    case icmpType = "icmp type"
    case icmpv6Type = "icmpv6 type"
    case ctState = "ct state"
    /// The owning user of the packet's local socket (output only).
    case metaSkuid = "meta skuid"
    /// The interface a packet arrived on.
    case iifname = "iifname"
    /// The interface a packet leaves by.
    case oifname = "oifname"
    /// The conntrack mark.
    case ctMark = "ct mark"
    /// The id of the local socket's ancestor cgroup at depth N (`socket cgroupv2 level N`).
    case cgroupLevel1 = "socket cgroupv2 level 1"
    case cgroupLevel2 = "socket cgroupv2 level 2"
    case cgroupLevel3 = "socket cgroupv2 level 3"
    case cgroupLevel4 = "socket cgroupv2 level 4"
    case cgroupLevel5 = "socket cgroupv2 level 5"
    case cgroupLevel6 = "socket cgroupv2 level 6"
    case cgroupLevel7 = "socket cgroupv2 level 7"
    case cgroupLevel8 = "socket cgroupv2 level 8"
    case cgroupLevel9 = "socket cgroupv2 level 9"
    case cgroupLevel10 = "socket cgroupv2 level 10"
    case cgroupLevel11 = "socket cgroupv2 level 11"
    case cgroupLevel12 = "socket cgroupv2 level 12"
    case cgroupLevel13 = "socket cgroupv2 level 13"
    case cgroupLevel14 = "socket cgroupv2 level 14"
    case cgroupLevel15 = "socket cgroupv2 level 15"
    case cgroupLevel16 = "socket cgroupv2 level 16"

    /// The deepest cgroup level a selector reads: a cgroup below it is matched through its ancestor there.
    /// Maps exist only for the levels a policy uses, so a deep level costs only the hosts that use one.
    /// (`IdentityNames.maxCgroupDepth`, which `check` enforces, is the same number.)
    public static let maxCgroupLevel = 16

    /// `socket cgroupv2 level N`, for 1 ≤ N ≤ `maxCgroupLevel`.
    public static func cgroup(level: Int) -> Selector? { Selector(rawValue: "socket cgroupv2 level \(level)") }

    /// The N of `socket cgroupv2 level N`, or nil for other selectors.
    public var cgroupLevel: Int? {
        guard rawValue.hasPrefix("socket cgroupv2 level ") else { return nil }
        return Int(rawValue.dropFirst("socket cgroupv2 level ".count))
    }

    /// The data type the selector yields.
    public var dataType: DataType {
        switch self {
        case .ipSaddr, .ipDaddr: .ipv4Address
        case .ip6Saddr, .ip6Daddr: .ipv6Address
        case .l4proto: .inetProtocol
        case .nfproto: .nfProto
        case .thDport, .thSport: .inetService
        case .icmpType: .icmpType
        case .icmpv6Type: .icmpv6Type
        case .ctState: .ctState
        case .metaSkuid: .uid
        case .iifname, .oifname: .ifname
        case .ctMark: .mark
        case .cgroupLevel1, .cgroupLevel2, .cgroupLevel3, .cgroupLevel4,
             .cgroupLevel5, .cgroupLevel6, .cgroupLevel7, .cgroupLevel8,
             .cgroupLevel9, .cgroupLevel10, .cgroupLevel11, .cgroupLevel12,
             .cgroupLevel13, .cgroupLevel14, .cgroupLevel15, .cgroupLevel16: .cgroupv2
        }
    }
}

/// How a selector's value is tested.
public enum Comparison: Hashable, Sendable {
    /// `== value`
    case equal(Value)
    /// `!= value`
    case notEqual(Value)
    /// `lo-hi`, inclusive.
    case inRange(Value, Value)
    /// `(field & mask) != 0`: nft's notation for flag sets such as `ct state established,related`.
    case anyBit(of: Value)
    /// `& mask == value`: one bit field of a word, e.g. `ct mark & 0x000000ff == 0x00000003`.
    case masked(Value, equals: Value)
}

/// A terminal or control-flow verdict.
public enum Verdict: Hashable, Sendable {
    case accept
    case drop
    case `continue`
    case `return`
    case jump(String)
    case goto(String)
}

/// What `reject` sends.
public enum RejectKind: Hashable, Sendable {
    /// `reject with tcp reset`
    case tcpReset
    /// `reject with icmpx port-unreachable`: the family-independent ICMP error.
    case icmpxPortUnreachable
}

/// One statement of a rule, in nft's own vocabulary.
///
/// The enum is closed so that the text renderer, the netlink encoder, the decoder and the
/// interpreter must each handle every case.
public enum Expression: Hashable, Sendable {
    /// `SELECTOR == / != / range / flags`, e.g. `meta l4proto tcp`.
    case match(Selector, Comparison)
    /// `SELECTOR . SELECTOR … @set` (or `!= @set`).
    case lookup([Selector], set: String, negated: Bool)
    /// `SELECTOR . SELECTOR … vmap @map`.
    case verdictMap([Selector], map: String)
    /// `counter`
    case counter
    /// `limit rate N/second burst B packets`
    case limit(perSecond: UInt64, burst: UInt32)
    /// `log prefix "…"`
    case log(prefix: String)
    /// `log prefix "…" group N`: the packet goes to NFLOG group N, for a userspace listener.
    case nflog(group: UInt16, prefix: String)
    /// `reject with …`
    case reject(RejectKind)
    /// A verdict statement.
    case verdict(Verdict)
    /// `ct mark set ct mark & ~MASK | VALUE`: writes one bit field of the conntrack mark, keeping the rest.
    case setCtMarkField(mask: UInt32, value: UInt32)
}

/// A rule: statements evaluated left to right.
public struct Rule: Hashable, Sendable {
    public var expressions: [Expression]
    /// Shown by `nft list` after the rule; stored as rule user data.
    public var comment: String?
    /// `NFTA_RULE_USERDATA` when it is not what `comment` encodes to (`nil`: exactly that;
    /// `[]`: none although there is a comment): another tool's annotations are drift too.
    public var userData: [UInt8]?

    public init(_ expressions: [Expression], comment: String? = nil, userData: [UInt8]? = nil) {
        self.expressions = expressions
        self.comment = comment
        self.userData = userData
    }
}
