import CNetfilter
import Ruleset

/// One nf_tables expression as the kernel runs it (`struct nft_expr_ops` in the kernel,
/// `nftnl_expr` in libnftnl): the level below `Ruleset.Expression`.
///
/// Rules are encoded by lowering each model expression to these (`RuleLowering`) and
/// decoded by lifting them back (`RuleLifting`).
enum KernelExpression: Hashable, Sendable {
    case meta(key: UInt32, dreg: UInt32)
    case payload(base: UInt32, offset: UInt32, length: UInt32, dreg: UInt32)
    case ct(key: UInt32, dreg: UInt32)
    /// `ct KEY set` from a register (`nft_ct` with `NFTA_CT_SREG`).
    case ctSet(key: UInt32, sreg: UInt32)
    /// A local socket's property into a register (`nft_socket`); `level` only for cgroupv2.
    case socket(key: UInt32, level: UInt32, dreg: UInt32)
    case cmp(op: UInt32, sreg: UInt32, data: [UInt8])
    case bitwise(sreg: UInt32, dreg: UInt32, length: UInt32, mask: [UInt8], xor: [UInt8])
    case byteorder(sreg: UInt32, dreg: UInt32, op: UInt32, length: UInt32, size: UInt32)
    /// `setID` names a set created in the same batch; the kernel does not report it back.
    case lookup(sreg: UInt32, set: String, setID: UInt32?, dreg: UInt32?, inverted: Bool)
    /// A verdict loaded into the verdict register.
    case immediate(Verdict)
    /// Counter values are state, not configuration: they are neither sent nor compared.
    case counter
    case limit(rate: UInt64, unit: UInt64, burst: UInt32, type: UInt32, flags: UInt32)
    case log(prefix: String)
    /// `log` with `NFTA_LOG_GROUP`: NFLOG instead of the kernel log.
    case nflog(group: UInt16, prefix: String)
    case reject(type: UInt32, code: UInt8)
    /// Anything zonewall does not generate, described for the drift report.
    case unknown(String)

    /// The expression with batch-only details removed, for comparing with a kernel dump.
    var normalized: KernelExpression {
        if case .lookup(let s, let set, _, let d, let inv) = self { return .lookup(sreg: s, set: set, setID: nil, dreg: d, inverted: inv) }
        return self
    }
}

// MARK: - Encoding

extension KernelExpression {
    /// Writes the expression as one `NFTA_LIST_ELEM` nest of a rule's `NFTA_RULE_EXPRESSIONS`.
    func encode(into w: inout NetlinkWriter) {
        let elem = w.beginNest(NFTA_LIST_ELEM.u16)
        func body(_ name: String, _ attrs: (inout NetlinkWriter) -> Void) {
            w.put(NFTA_EXPR_NAME.u16, string: name)
            let data = w.beginNest(NFTA_EXPR_DATA.u16)
            attrs(&w)
            w.endNest(data)
        }
        switch self {
        case .meta(let key, let dreg):
            body("meta") {
                $0.put(NFTA_META_KEY.u16, u32: key)
                $0.put(NFTA_META_DREG.u16, u32: dreg)
            }
        case .payload(let base, let offset, let length, let dreg):
            body("payload") {
                $0.put(NFTA_PAYLOAD_DREG.u16, u32: dreg)
                $0.put(NFTA_PAYLOAD_BASE.u16, u32: base)
                $0.put(NFTA_PAYLOAD_OFFSET.u16, u32: offset)
                $0.put(NFTA_PAYLOAD_LEN.u16, u32: length)
            }
        case .ct(let key, let dreg):
            body("ct") {
                $0.put(NFTA_CT_KEY.u16, u32: key)
                $0.put(NFTA_CT_DREG.u16, u32: dreg)
            }
        case .ctSet(let key, let sreg):
            body("ct") {
                $0.put(NFTA_CT_KEY.u16, u32: key)
                $0.put(NFTA_CT_SREG.u16, u32: sreg)
            }
        case .socket(let key, let level, let dreg):
            body("socket") {
                $0.put(NFTA_SOCKET_KEY.u16, u32: key)
                $0.put(NFTA_SOCKET_DREG.u16, u32: dreg)
                if key == NFT_SOCKET_CGROUPV2.u32 { $0.put(NFTA_SOCKET_LEVEL.u16, u32: level) }
            }
        case .cmp(let op, let sreg, let data):
            body("cmp") {
                $0.put(NFTA_CMP_SREG.u16, u32: sreg)
                $0.put(NFTA_CMP_OP.u16, u32: op)
                Self.putValue(NFTA_CMP_DATA.u16, data, &$0)
            }
        case .bitwise(let sreg, let dreg, let length, let mask, let xor):
            body("bitwise") {
                $0.put(NFTA_BITWISE_SREG.u16, u32: sreg)
                $0.put(NFTA_BITWISE_DREG.u16, u32: dreg)
                $0.put(NFTA_BITWISE_LEN.u16, u32: length)
                Self.putValue(NFTA_BITWISE_MASK.u16, mask, &$0)
                Self.putValue(NFTA_BITWISE_XOR.u16, xor, &$0)
            }
        case .byteorder(let sreg, let dreg, let op, let length, let size):
            body("byteorder") {
                $0.put(NFTA_BYTEORDER_SREG.u16, u32: sreg)
                $0.put(NFTA_BYTEORDER_DREG.u16, u32: dreg)
                $0.put(NFTA_BYTEORDER_OP.u16, u32: op)
                $0.put(NFTA_BYTEORDER_LEN.u16, u32: length)
                $0.put(NFTA_BYTEORDER_SIZE.u16, u32: size)
            }
        case .lookup(let sreg, let set, let setID, let dreg, let inverted):
            body("lookup") {
                $0.put(NFTA_LOOKUP_SREG.u16, u32: sreg)
                if let dreg { $0.put(NFTA_LOOKUP_DREG.u16, u32: dreg) }
                $0.put(NFTA_LOOKUP_SET.u16, string: set)
                if let setID { $0.put(NFTA_LOOKUP_SET_ID.u16, u32: setID) }
                if inverted { $0.put(NFTA_LOOKUP_FLAGS.u16, u32: NFT_LOOKUP_F_INV.u32) }
            }
        case .immediate(let v):
            body("immediate") {
                $0.put(NFTA_IMMEDIATE_DREG.u16, u32: NFT_REG_VERDICT.u32)
                let data = $0.beginNest(NFTA_IMMEDIATE_DATA.u16)
                Self.putVerdict(v, &$0)
                $0.endNest(data)
            }
        case .counter:
            body("counter") { _ in }
        case .limit(let rate, let unit, let burst, let type, let flags):
            body("limit") {
                $0.put(NFTA_LIMIT_RATE.u16, u64: rate)
                $0.put(NFTA_LIMIT_UNIT.u16, u64: unit)
                $0.put(NFTA_LIMIT_BURST.u16, u32: burst)
                $0.put(NFTA_LIMIT_TYPE.u16, u32: type)
                $0.put(NFTA_LIMIT_FLAGS.u16, u32: flags)
            }
        case .log(let prefix):
            body("log") { $0.put(NFTA_LOG_PREFIX.u16, string: prefix) }
        case .nflog(let group, let prefix):
            body("log") {
                $0.put(NFTA_LOG_PREFIX.u16, string: prefix)
                $0.put(NFTA_LOG_GROUP.u16, bytes: [UInt8(group >> 8), UInt8(group & 0xff)])
            }
        case .reject(let type, let code):
            body("reject") {
                $0.put(NFTA_REJECT_TYPE.u16, u32: type)
                $0.put(NFTA_REJECT_ICMP_CODE.u16, u8: code)
            }
        case .unknown(let what):
            preconditionFailure("cannot encode unknown expression \(what)")
        }
        w.endNest(elem)
    }

    /// `NFTA_DATA_VALUE` inside a nest of `type`.
    static func putValue(_ type: UInt16, _ bytes: [UInt8], _ w: inout NetlinkWriter) {
        let n = w.beginNest(type)
        w.put(NFTA_DATA_VALUE.u16, bytes: bytes)
        w.endNest(n)
    }

    /// `NFTA_DATA_VERDICT` with its code and, for jump/goto, the chain.
    static func putVerdict(_ v: Verdict, _ w: inout NetlinkWriter) {
        let n = w.beginNest(NFTA_DATA_VERDICT.u16)
        w.put(NFTA_VERDICT_CODE.u16, u32: UInt32(bitPattern: verdictCode(v)))
        switch v {
        case .jump(let c), .goto(let c): w.put(NFTA_VERDICT_CHAIN.u16, string: c)
        default: break
        }
        w.endNest(n)
    }

    static func verdictCode(_ v: Verdict) -> Int32 {
        switch v {
        case .accept: NF_ACCEPT
        case .drop: NF_DROP
        case .continue: NFT_CONTINUE.rawValue
        case .return: NFT_RETURN.rawValue
        case .jump: NFT_JUMP.rawValue
        case .goto: NFT_GOTO.rawValue
        }
    }
}

// MARK: - Decoding

extension KernelExpression {
    /// Reads one `NFTA_LIST_ELEM` nest. Attributes zonewall never sets make the expression
    /// `.unknown`, so a foreign variant of a familiar expression is never mistaken for ours.
    static func decode(_ elem: NetlinkAttribute) -> KernelExpression {
        let attrs = elem.nested
        guard let name = attrs[NFTA_EXPR_NAME.u16]?.string else { return .unknown("expression without a name") }
        let data = attrs[NFTA_EXPR_DATA.u16]?.nested ?? NetlinkAttributes([])
        var seen: [UInt16: NetlinkAttribute] = [:]
        for a in data { seen[a.type] = a }
        func only<T: RawRepresentable>(_ allowed: T...) -> Bool where T.RawValue == UInt32 {
            let set = Set(allowed.map { $0.u16 })
            return seen.keys.allSatisfy(set.contains)
        }
        func u32(_ t: some RawRepresentable<UInt32>) -> UInt32? { seen[t.u16]?.u32 }
        func str(_ t: some RawRepresentable<UInt32>) -> String? { seen[t.u16]?.string }
        func value(_ t: some RawRepresentable<UInt32>) -> [UInt8]? {
            seen[t.u16]?.nested[NFTA_DATA_VALUE.u16].map { Array($0.payload) }
        }
        // Formatted only when needed: it was formatted for every expression decoded, on the
        // dump's hot path (seen in a profile of the table-dump fuzz target).
        var unknown: KernelExpression { .unknown("\(name) [attributes \(seen.keys.sorted())]") }

        switch name {
        case "meta":
            guard only(NFTA_META_KEY, NFTA_META_DREG), let k = u32(NFTA_META_KEY), let d = u32(NFTA_META_DREG) else { return unknown }
            return .meta(key: k, dreg: d)
        case "payload":
            guard only(NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_OFFSET, NFTA_PAYLOAD_LEN),
                  let d = u32(NFTA_PAYLOAD_DREG), let b = u32(NFTA_PAYLOAD_BASE),
                  let o = u32(NFTA_PAYLOAD_OFFSET), let l = u32(NFTA_PAYLOAD_LEN) else { return unknown }
            return .payload(base: b, offset: o, length: l, dreg: d)
        case "ct":
            if only(NFTA_CT_KEY, NFTA_CT_SREG), let k = u32(NFTA_CT_KEY), let r = u32(NFTA_CT_SREG) { return .ctSet(key: k, sreg: r) }
            guard only(NFTA_CT_KEY, NFTA_CT_DREG), let k = u32(NFTA_CT_KEY), let d = u32(NFTA_CT_DREG) else { return unknown }
            return .ct(key: k, dreg: d)
        case "socket":
            guard only(NFTA_SOCKET_KEY, NFTA_SOCKET_DREG, NFTA_SOCKET_LEVEL), let k = u32(NFTA_SOCKET_KEY),
                  let d = u32(NFTA_SOCKET_DREG) else { return unknown }
            return .socket(key: k, level: u32(NFTA_SOCKET_LEVEL) ?? 0, dreg: d)
        case "cmp":
            guard only(NFTA_CMP_SREG, NFTA_CMP_OP, NFTA_CMP_DATA), let s = u32(NFTA_CMP_SREG),
                  let op = u32(NFTA_CMP_OP), let v = value(NFTA_CMP_DATA) else { return unknown }
            return .cmp(op: op, sreg: s, data: v)
        case "bitwise":
            // Newer kernels report the operation; 0 is the mask-and-xor form nft uses here.
            guard only(NFTA_BITWISE_SREG, NFTA_BITWISE_DREG, NFTA_BITWISE_LEN, NFTA_BITWISE_MASK, NFTA_BITWISE_XOR, NFTA_BITWISE_OP),
                  (u32(NFTA_BITWISE_OP) ?? 0) == 0,
                  let s = u32(NFTA_BITWISE_SREG), let d = u32(NFTA_BITWISE_DREG), let l = u32(NFTA_BITWISE_LEN),
                  let m = value(NFTA_BITWISE_MASK), let x = value(NFTA_BITWISE_XOR) else { return unknown }
            return .bitwise(sreg: s, dreg: d, length: l, mask: m, xor: x)
        case "byteorder":
            guard only(NFTA_BYTEORDER_SREG, NFTA_BYTEORDER_DREG, NFTA_BYTEORDER_OP, NFTA_BYTEORDER_LEN, NFTA_BYTEORDER_SIZE),
                  let s = u32(NFTA_BYTEORDER_SREG), let d = u32(NFTA_BYTEORDER_DREG), let op = u32(NFTA_BYTEORDER_OP),
                  let l = u32(NFTA_BYTEORDER_LEN), let z = u32(NFTA_BYTEORDER_SIZE) else { return unknown }
            return .byteorder(sreg: s, dreg: d, op: op, length: l, size: z)
        case "lookup":
            let flags = u32(NFTA_LOOKUP_FLAGS) ?? 0
            guard only(NFTA_LOOKUP_SET, NFTA_LOOKUP_SREG, NFTA_LOOKUP_DREG, NFTA_LOOKUP_SET_ID, NFTA_LOOKUP_FLAGS),
                  flags & ~NFT_LOOKUP_F_INV.u32 == 0,
                  let set = str(NFTA_LOOKUP_SET), let s = u32(NFTA_LOOKUP_SREG) else { return unknown }
            return .lookup(sreg: s, set: set, setID: nil, dreg: u32(NFTA_LOOKUP_DREG), inverted: flags != 0)
        case "immediate":
            guard only(NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA), u32(NFTA_IMMEDIATE_DREG) == NFT_REG_VERDICT.u32,
                  let data = seen[NFTA_IMMEDIATE_DATA.u16], let v = decodeVerdict(data) else { return unknown }
            return .immediate(v)
        case "counter":
            guard only(NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS, NFTA_COUNTER_PAD) else { return unknown }
            return .counter
        case "limit":
            guard only(NFTA_LIMIT_RATE, NFTA_LIMIT_UNIT, NFTA_LIMIT_BURST, NFTA_LIMIT_TYPE, NFTA_LIMIT_FLAGS, NFTA_LIMIT_PAD),
                  let r = seen[NFTA_LIMIT_RATE.u16]?.u64, let u = seen[NFTA_LIMIT_UNIT.u16]?.u64 else { return unknown }
            return .limit(rate: r, unit: u, burst: u32(NFTA_LIMIT_BURST) ?? 0, type: u32(NFTA_LIMIT_TYPE) ?? 0,
                          flags: u32(NFTA_LIMIT_FLAGS) ?? 0)
        case "log" where seen[NFTA_LOG_GROUP.u16] != nil:
            guard only(NFTA_LOG_PREFIX, NFTA_LOG_GROUP), let g = seen[NFTA_LOG_GROUP.u16]?.payload, g.count == 2,
                  let p = str(NFTA_LOG_PREFIX) else { return unknown }
            return .nflog(group: UInt16(g[g.startIndex]) << 8 | UInt16(g[g.startIndex + 1]), prefix: p)
        case "log":
            // The kernel reports the default syslog level (warning) that nft leaves unset.
            guard only(NFTA_LOG_PREFIX, NFTA_LOG_LEVEL, NFTA_LOG_FLAGS),
                  (u32(NFTA_LOG_LEVEL) ?? 4) == 4, (u32(NFTA_LOG_FLAGS) ?? 0) == 0,
                  let p = str(NFTA_LOG_PREFIX) else { return unknown }
            return .log(prefix: p)
        case "reject":
            guard only(NFTA_REJECT_TYPE, NFTA_REJECT_ICMP_CODE), let t = u32(NFTA_REJECT_TYPE) else { return unknown }
            return .reject(type: t, code: seen[NFTA_REJECT_ICMP_CODE.u16]?.u8 ?? 0)
        default:
            return unknown
        }
    }

    /// A verdict from an `NFTA_DATA_*` nest holding `NFTA_DATA_VERDICT`.
    static func decodeVerdict(_ data: NetlinkAttribute) -> Verdict? {
        guard let v = data.nested[NFTA_DATA_VERDICT.u16]?.nested, let code = v[NFTA_VERDICT_CODE.u16] else { return nil }
        let chain = v[NFTA_VERDICT_CHAIN.u16]?.string
        switch Int32(bitPattern: code.u32) {
        case NF_ACCEPT: return .accept
        case NF_DROP: return .drop
        case NFT_CONTINUE.rawValue: return .continue
        case NFT_RETURN.rawValue: return .return
        case NFT_JUMP.rawValue: return chain.map(Verdict.jump)
        case NFT_GOTO.rawValue: return chain.map(Verdict.goto)
        default: return nil
        }
    }
}
