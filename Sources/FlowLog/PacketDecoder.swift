import Foundation
import ZonePolicy

/// Decodes the network header NFLOG copies into a `LoggedPacket`. Total: malformed, truncated
/// or foreign input gives nil (or a packet without a port), never a trap.
public enum PacketDecoder {
    /// The packet for a prefix, a kernel hook number and the bytes from the network header on.
    public static func decode(prefix: String, hook: UInt8, payload: some Collection<UInt8>, time: Date) -> LoggedPacket? {
        guard let verdict = verdict(ofPrefix: prefix), let hook = LogHook(kernelNumber: hook) else { return nil }
        let b = Array(payload)
        guard let first = b.first else { return nil }
        switch first >> 4 {
        case 4: return ipv4(b, verdict, hook, time)
        case 6: return ipv6(b, verdict, hook, time)
        default: return nil
        }
    }

    /// `denied` or `audit` from an NFLOG prefix (also the kernel-log form "zonewall audit ").
    public static func verdict(ofPrefix prefix: String) -> LogVerdict? {
        var p = prefix.trimmingCharacters(in: .whitespaces)
        if p.hasPrefix("zonewall ") { p.removeFirst("zonewall ".count) }
        return LogVerdict(rawValue: p)
    }

    static func ipv4(_ b: [UInt8], _ v: LogVerdict, _ h: LogHook, _ t: Date) -> LoggedPacket? {
        guard b.count >= 20 else { return nil }
        let ihl = Int(b[0] & 0x0f) * 4
        guard ihl >= 20, b.count >= ihl else { return nil }
        let src = IPPrefix(family: .ipv4, address: UInt128(be32(b, 12)), length: 32)
        let dst = IPPrefix(family: .ipv4, address: UInt128(be32(b, 16)), length: 32)
        let proto = b[9]
        // A later fragment carries no transport header.
        let fragmentOffset = (UInt16(b[6] & 0x1f) << 8) | UInt16(b[7])
        let port = fragmentOffset == 0 ? transportPort(b, at: ihl, proto: proto) : nil
        return LoggedPacket(time: t, verdict: v, hook: h, src: src, dst: dst, proto: proto, port: port)
    }

    static func ipv6(_ b: [UInt8], _ v: LogVerdict, _ h: LogHook, _ t: Date) -> LoggedPacket? {
        guard b.count >= 40 else { return nil }
        let src = IPPrefix(family: .ipv6, address: be128(b, 8), length: 128)
        let dst = IPPrefix(family: .ipv6, address: be128(b, 24), length: 128)
        var next = b[6]
        var at = 40
        var laterFragment = false
        // Extension headers, as nft's `meta l4proto` skips them; bounded so a loop cannot spin.
        for _ in 0..<8 {
            switch next {
            case 0, 43, 60:  // hop-by-hop, routing, destination options
                guard b.count >= at + 2 else { return LoggedPacket(time: t, verdict: v, hook: h, src: src, dst: dst, proto: next, port: nil) }
                next = b[at]
                at += (Int(b[at + 1]) + 1) * 8
            case 44:  // fragment
                guard b.count >= at + 8 else { return LoggedPacket(time: t, verdict: v, hook: h, src: src, dst: dst, proto: next, port: nil) }
                laterFragment = ((UInt16(b[at + 2]) << 8 | UInt16(b[at + 3])) & 0xfff8) != 0
                next = b[at]
                at += 8
            case 51:  // authentication header
                guard b.count >= at + 2 else { return LoggedPacket(time: t, verdict: v, hook: h, src: src, dst: dst, proto: next, port: nil) }
                next = b[at]
                at += (Int(b[at + 1]) + 2) * 4
            default:
                let port = laterFragment ? nil : transportPort(b, at: at, proto: next)
                return LoggedPacket(time: t, verdict: v, hook: h, src: src, dst: dst, proto: next, port: port)
            }
        }
        return LoggedPacket(time: t, verdict: v, hook: h, src: src, dst: dst, proto: next, port: nil)
    }

    /// The destination port (TCP, UDP, SCTP, UDP-Lite) or the ICMP type, when the bytes are there.
    static func transportPort(_ b: [UInt8], at i: Int, proto: UInt8) -> UInt16? {
        switch proto {
        case 6, 17, 132, 136:
            guard i >= 0, b.count >= i + 4 else { return nil }
            return UInt16(b[i + 2]) << 8 | UInt16(b[i + 3])
        case 1, 58:
            guard i >= 0, b.count >= i + 1 else { return nil }
            return UInt16(b[i])
        default:
            return nil
        }
    }

    static func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        (i..<i + 4).reduce(0) { $0 << 8 | UInt32(b[$1]) }
    }

    static func be128(_ b: [UInt8], _ i: Int) -> UInt128 {
        (i..<i + 16).reduce(0) { $0 << 8 | UInt128(b[$1]) }
    }
}
