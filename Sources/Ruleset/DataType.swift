/// An nftables data type of a set key, a map value or a match operand.
///
/// The raw values are nft's own type ids (`enum datatypes` in nftables' `datatype.h`),
/// which nft stores in the kernel; keeping them lets `nft list` print our sets.
public struct DataType: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Not an nftables type: what a kernel set whose key length does not match its type
    /// decodes to, so that it equals no set zonewall declares.
    public static let unknownWidth = DataType(rawValue: 0)
    public static let verdict = DataType(rawValue: 1)
    public static let integer = DataType(rawValue: 4)
    public static let ipv4Address = DataType(rawValue: 7)
    public static let ipv6Address = DataType(rawValue: 8)
    public static let inetProtocol = DataType(rawValue: 12)
    public static let inetService = DataType(rawValue: 13)
    public static let icmpType = DataType(rawValue: 14)
    public static let mark = DataType(rawValue: 19)
    public static let nfProto = DataType(rawValue: 21)
    public static let icmpv6Type = DataType(rawValue: 29)
    public static let ctState = DataType(rawValue: 31)
    /// nft's `uid` (TYPE_UID).
    public static let uid = DataType(rawValue: 24)
    /// nft's `ifname` (TYPE_IFNAME): 16 bytes, NUL padded.
    public static let ifname = DataType(rawValue: 41)
    /// nft's `cgroupsv2` (TYPE_CGROUPV2): a cgroup's 64-bit id, its directory's inode number.
    public static let cgroupv2 = DataType(rawValue: 46)

    /// nft's name, as written after `type` in a set declaration.
    public var name: String {
        switch self {
        case .verdict: "verdict"
        case .integer: "integer"
        case .ipv4Address: "ipv4_addr"
        case .ipv6Address: "ipv6_addr"
        case .inetProtocol: "inet_proto"
        case .inetService: "inet_service"
        case .icmpType: "icmp_type"
        case .mark: "mark"
        case .nfProto: "nf_proto"
        case .icmpv6Type: "icmpv6_type"
        case .ctState: "ct_state"
        case .uid: "uid"
        case .ifname: "ifname"
        case .cgroupv2: "cgroupsv2"
        default: "type(\(rawValue))"
        }
    }

    /// Width of a value in bytes.
    public var width: Int {
        switch self {
        case .ipv4Address, .mark, .ctState, .integer, .uid: 4
        case .ipv6Address, .ifname: 16
        case .cgroupv2: 8
        case .inetProtocol, .icmpType, .icmpv6Type, .nfProto: 1
        case .inetService: 2
        default: 4
        }
    }

    /// Whether values are stored in network byte order (big endian) in the kernel.
    public var isBigEndian: Bool {
        switch self {
        case .mark, .ctState, .integer, .verdict, .uid, .cgroupv2: false
        default: true
        }
    }

    /// Width in a concatenated key: every component is padded to 4 bytes.
    public var paddedWidth: Int { (width + 3) / 4 * 4 }

    /// Bits nft uses to pack one type id into a concatenation's type id.
    static let concatTypeBits: UInt32 = 6

    /// nft's type id for a concatenation of `types`.
    public static func concatenationID(_ types: [DataType]) -> UInt32 {
        types.reduce(0) { ($0 << concatTypeBits) | $1.rawValue }
    }
}
