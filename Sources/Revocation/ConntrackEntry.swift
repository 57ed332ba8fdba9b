import ZonePolicy

/// One connection-tracking entry, as far as revocation needs it: what the filter hooks saw
/// when the flow was admitted, and what identifies it for deletion.
public struct ConntrackEntry: Hashable, Sendable {
    /// IPv4 or IPv6.
    public var family: AddressFamily
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6, …).
    public var proto: UInt8
    /// Original direction's source address.
    public var source: UInt128
    /// Original direction's destination address (before any DNAT).
    public var destination: UInt128
    /// Original direction's source port; 0 for protocols without ports.
    public var sourcePort: UInt16
    /// Original direction's destination port; 0 for protocols without ports.
    public var destinationPort: UInt16
    /// Where the original direction was really sent after DNAT (the reply's source): what the
    /// filter hooks classified. Equal to `destination` without NAT.
    public var translatedDestination: UInt128
    /// The destination port after DNAT (the reply's source port).
    public var translatedDestinationPort: UInt16
    /// ICMP/ICMPv6 type, code and identifier of the original direction.
    public var icmpType: UInt8
    public var icmpCode: UInt8
    public var icmpID: UInt16
    /// Conntrack zone (`ct zone`), part of the entry's identity.
    public var zone: UInt16
    /// The kernel's id for the entry: a delete carrying it cannot hit a newer flow with the same tuple.
    public var id: UInt32

    public init(family: AddressFamily, proto: UInt8, source: UInt128, destination: UInt128,
                sourcePort: UInt16 = 0, destinationPort: UInt16 = 0,
                translatedDestination: UInt128? = nil, translatedDestinationPort: UInt16? = nil,
                icmpType: UInt8 = 0, icmpCode: UInt8 = 0, icmpID: UInt16 = 0, zone: UInt16 = 0, id: UInt32 = 0) {
        self.family = family
        self.proto = proto
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.translatedDestination = translatedDestination ?? destination
        self.translatedDestinationPort = translatedDestinationPort ?? destinationPort
        self.icmpType = icmpType
        self.icmpCode = icmpCode
        self.icmpID = icmpID
        self.zone = zone
        self.id = id
    }

    /// Whether the protocol carries ports (TCP, UDP, UDP-Lite, SCTP, DCCP).
    public var hasPorts: Bool { [6, 17, 136, 132, 33].contains(proto) }

    /// Whether the protocol is ICMP of the entry's family.
    public var isICMP: Bool { (family == .ipv4 && proto == 1) || (family == .ipv6 && proto == 58) }

    /// The flow as the policy evaluator sees it, with the port the filter hooks saw.
    public var flow: Flow {
        if isICMP { return Flow(proto: proto, icmpType: icmpType) }
        return Flow(proto: proto, port: hasPorts ? translatedDestinationPort : nil)
    }

    /// `tcp/5432`, `udp/53`, `icmp type 8`, `proto 47`: for logs.
    public var protoAndPort: (proto: String, port: String) {
        let name: String = switch proto {
        case 6: "tcp"
        case 17: "udp"
        case 132: "sctp"
        case 1: "icmp"
        case 58: "icmpv6"
        default: "\(proto)"
        }
        if isICMP { return (name, "type \(icmpType)") }
        return (name, hasPorts ? "\(translatedDestinationPort)" : "-")
    }

    /// The source address as text.
    public var sourceText: String { IPPrefix(family: family, address: source, length: family.bits).description }
    /// The destination the filter saw, as text.
    public var destinationText: String {
        IPPrefix(family: family, address: translatedDestination, length: family.bits).description
    }
}
