import CNetfilter
import Ruleset

/// How a selector reads its field into a register, and what nft checks before reading it.
struct SelectorLoad: Hashable, Sendable {
    enum Source: Hashable, Sendable {
        case meta(UInt32)
        case payload(base: UInt32, offset: UInt32)
        case ct(UInt32)
        case socket(key: UInt32, level: UInt32)
    }
    var source: Source
    var width: Int
    /// The `meta nfproto` an `inet` table must check first (`ip saddr` → ipv4).
    var nfproto: UInt8?
    /// The `meta l4proto` that must be checked first (`icmp type` → icmp).
    var l4proto: UInt8?
    /// Host-order fields are converted with a `byteorder` expression inside concatenations.
    var needsByteorderInConcat: Bool

    static func of(_ s: Selector) -> SelectorLoad {
        let network = NFT_PAYLOAD_NETWORK_HEADER.u32, transport = NFT_PAYLOAD_TRANSPORT_HEADER.u32
        switch s {
        case .ipSaddr: return .init(source: .payload(base: network, offset: 12), width: 4, nfproto: 2, l4proto: nil, needsByteorderInConcat: false)
        case .ipDaddr: return .init(source: .payload(base: network, offset: 16), width: 4, nfproto: 2, l4proto: nil, needsByteorderInConcat: false)
        case .ip6Saddr: return .init(source: .payload(base: network, offset: 8), width: 16, nfproto: 10, l4proto: nil, needsByteorderInConcat: false)
        case .ip6Daddr: return .init(source: .payload(base: network, offset: 24), width: 16, nfproto: 10, l4proto: nil, needsByteorderInConcat: false)
        case .l4proto: return .init(source: .meta(NFT_META_L4PROTO.u32), width: 1, nfproto: nil, l4proto: nil, needsByteorderInConcat: true)
        case .nfproto: return .init(source: .meta(NFT_META_NFPROTO.u32), width: 1, nfproto: nil, l4proto: nil, needsByteorderInConcat: true)
        case .thDport: return .init(source: .payload(base: transport, offset: 2), width: 2, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .thSport: return .init(source: .payload(base: transport, offset: 0), width: 2, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .icmpType: return .init(source: .payload(base: transport, offset: 0), width: 1, nfproto: 2, l4proto: 1, needsByteorderInConcat: false)
        case .icmpv6Type: return .init(source: .payload(base: transport, offset: 0), width: 1, nfproto: 10, l4proto: 58, needsByteorderInConcat: false)
        case .ctState: return .init(source: .ct(NFT_CT_STATE.u32), width: 4, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .metaSkuid: return .init(source: .meta(NFT_META_SKUID.u32), width: 4, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .iifname: return .init(source: .meta(NFT_META_IIFNAME.u32), width: 16, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .oifname: return .init(source: .meta(NFT_META_OIFNAME.u32), width: 16, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .ctMark: return .init(source: .ct(NFT_CT_MARK.u32), width: 4, nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        case .cgroupLevel1, .cgroupLevel2, .cgroupLevel3, .cgroupLevel4,
             .cgroupLevel5, .cgroupLevel6, .cgroupLevel7, .cgroupLevel8,
             .cgroupLevel9, .cgroupLevel10, .cgroupLevel11, .cgroupLevel12,
             .cgroupLevel13, .cgroupLevel14, .cgroupLevel15, .cgroupLevel16:
            return .init(source: .socket(key: NFT_SOCKET_CGROUPV2.u32, level: UInt32(s.cgroupLevel!)), width: 8,
                         nfproto: nil, l4proto: nil, needsByteorderInConcat: false)
        }
    }

    func load(into reg: UInt32) -> KernelExpression {
        switch source {
        case .meta(let key): .meta(key: key, dreg: reg)
        case .payload(let base, let offset): .payload(base: base, offset: offset, length: UInt32(width), dreg: reg)
        case .ct(let key): .ct(key: key, dreg: reg)
        case .socket(let key, let level): .socket(key: key, level: level, dreg: reg)
        }
    }
}

/// Lowers a rule's model expressions to kernel expressions exactly as nft 1.0.6 does for the
/// text `NftText` renders, including the dependencies nft adds implicitly:
///
/// - in an `inet` table, `ip …` / `ip6 …` first match `meta nfproto ipv4|ipv6`;
/// - `icmp type` / `icmpv6 type` first match `meta nfproto` and `meta l4proto icmp|ipv6-icmp`;
/// - a dependency already established earlier in the rule (explicitly or implicitly) is not repeated;
/// - `ct state X` (a flag type) is `(state & X) != 0`, but `ct state != X` is a plain compare;
/// - ranges are two compares (`>=`, `<=`);
/// - concatenations load into consecutive 32-bit registers, named the way nft names them
///   (a 16-byte-aligned register is written as the legacy `NFT_REG_1…4`), and host-order
///   components (`meta l4proto`) are converted to network order with `byteorder`.
struct RuleLowering {
    var family: Family
    /// Ids of sets created in the same batch; lookups of those carry the id, as nft's do.
    var setIDs: [String: UInt32] = [:]

    func lower(_ expressions: [Expression]) -> [KernelExpression] {
        var out: [KernelExpression] = []
        var nfproto: UInt8? = family == .ipv4 ? 2 : family == .ipv6 ? 10 : nil
        var l4proto: UInt8?
        let reg1 = NFT_REG_1.u32

        func dependencies(_ load: SelectorLoad) {
            // `meta l4proto icmp` satisfies `icmp type` entirely: nft then adds no nfproto check.
            if let want = load.l4proto, l4proto == want { return }
            if let want = load.nfproto, nfproto != want, family == .inet {
                out.append(.meta(key: NFT_META_NFPROTO.u32, dreg: reg1))
                out.append(.cmp(op: NFT_CMP_EQ.u32, sreg: reg1, data: [want]))
                nfproto = want
            }
            if let want = load.l4proto, l4proto != want {
                out.append(.meta(key: NFT_META_L4PROTO.u32, dreg: reg1))
                out.append(.cmp(op: NFT_CMP_EQ.u32, sreg: reg1, data: [want]))
                l4proto = want
            }
        }

        func loadKey(_ selectors: [Selector]) {
            let loads = selectors.map(SelectorLoad.of)
            loads.forEach(dependencies)
            guard loads.count > 1 else {
                out.append(loads[0].load(into: reg1))
                return
            }
            var word = 0
            for l in loads {
                let reg = Self.register(word: word)
                out.append(l.load(into: reg))
                if l.needsByteorderInConcat {
                    out.append(.byteorder(sreg: reg, dreg: reg, op: NFT_BYTEORDER_HTON.u32, length: UInt32(l.width), size: 2))
                }
                word += (l.width + 3) / 4
            }
        }

        for e in expressions {
            switch e {
            case .match(let sel, let cmp):
                let load = SelectorLoad.of(sel)
                dependencies(load)
                out.append(load.load(into: reg1))
                let type = sel.dataType
                switch cmp {
                case .equal(let v) where sel == .ctState, .anyBit(let v) where sel == .ctState:
                    let zero = [UInt8](repeating: 0, count: load.width)
                    out.append(.bitwise(sreg: reg1, dreg: reg1, length: UInt32(load.width), mask: Self.bytes(v, type), xor: zero))
                    out.append(.cmp(op: NFT_CMP_NEQ.u32, sreg: reg1, data: zero))
                case .equal(let v), .anyBit(let v):
                    out.append(.cmp(op: NFT_CMP_EQ.u32, sreg: reg1, data: Self.bytes(v, type)))
                    if sel == .nfproto { nfproto = UInt8(truncatingIfNeeded: v.low) }
                    if sel == .l4proto { l4proto = UInt8(truncatingIfNeeded: v.low) }
                case .notEqual(let v):
                    out.append(.cmp(op: NFT_CMP_NEQ.u32, sreg: reg1, data: Self.bytes(v, type)))
                case .masked(let mask, let v):
                    let zero = [UInt8](repeating: 0, count: load.width)
                    out.append(.bitwise(sreg: reg1, dreg: reg1, length: UInt32(load.width), mask: Self.bytes(mask, type), xor: zero))
                    out.append(.cmp(op: NFT_CMP_EQ.u32, sreg: reg1, data: Self.bytes(v, type)))
                case .inRange(let lo, let hi):
                    out.append(.cmp(op: NFT_CMP_GTE.u32, sreg: reg1, data: Self.bytes(lo, type)))
                    out.append(.cmp(op: NFT_CMP_LTE.u32, sreg: reg1, data: Self.bytes(hi, type)))
                }
            case .lookup(let sels, let set, let negated):
                loadKey(sels)
                out.append(.lookup(sreg: reg1, set: set, setID: setIDs[set], dreg: nil, inverted: negated))
            case .verdictMap(let sels, let map):
                loadKey(sels)
                out.append(.lookup(sreg: reg1, set: map, setID: setIDs[map], dreg: NFT_REG_VERDICT.u32, inverted: false))
            case .counter:
                out.append(.counter)
            case .limit(let rate, let burst):
                out.append(.limit(rate: rate, unit: 1, burst: burst, type: NFT_LIMIT_PKTS.u32, flags: 0))
            case .log(let prefix):
                out.append(.log(prefix: prefix))
            case .nflog(let group, let prefix):
                out.append(.nflog(group: group, prefix: prefix))
            case .reject(.tcpReset):
                out.append(.reject(type: NFT_REJECT_TCP_RST.u32, code: 0))
            case .reject(.icmpxPortUnreachable):
                out.append(.reject(type: NFT_REJECT_ICMPX_UNREACH.u32, code: UInt8(NFT_REJECT_ICMPX_PORT_UNREACH.rawValue)))
            case .setCtMarkField(let mask, let value):
                // nft's `ct mark set ct mark and ~MASK or VALUE`: load, mask-and-xor, store.
                out.append(.ct(key: NFT_CT_MARK.u32, dreg: reg1))
                out.append(.bitwise(sreg: reg1, dreg: reg1, length: 4, mask: Self.bytes(Value(UInt64(~mask), width: 4), .mark),
                                    xor: Self.bytes(Value(UInt64(value), width: 4), .mark)))
                out.append(.ctSet(key: NFT_CT_MARK.u32, sreg: reg1))
            case .verdict(let v):
                out.append(.immediate(v))
            }
        }
        return out
    }

    /// nft's register for a concatenation component starting at 32-bit word `word`:
    /// 16-byte aligned ones use the legacy names `NFT_REG_1…4`, others `NFT_REG32_nn`.
    static func register(word: Int) -> UInt32 {
        word % 4 == 0 ? NFT_REG_1.u32 + UInt32(word / 4) : NFT_REG32_00.u32 + UInt32(word)
    }

    /// A value as a register holds it: network order, or host order for host-order types.
    static func bytes(_ v: Value, _ type: DataType) -> [UInt8] {
        var w = NetlinkWriter(capacity: 16)
        w.append(Value(v.uint128, width: type.width), bigEndian: type.isBigEndian)
        return w.bytes
    }
}
