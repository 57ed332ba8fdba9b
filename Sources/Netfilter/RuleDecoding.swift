import CNetfilter
import Ruleset

// Rules are decoded by libnftnl: `nftnl_rule_nlmsg_parse`, then each expression through an
// `nftnl_expr_iter` and the expression getters. libnftnl exits the process on an attribute
// of the wrong size (`abi_breakage`), so a message is first checked against the policies
// below, which name exactly the attributes zonewall's expressions have; a rule with anything
// else is a rule zonewall did not write, and is reported as such without being parsed.

enum RuleDecoding {
    /// An `NFTA_DATA_*` nest: a value of at most 64 bytes (`NFT_DATA_VALUE_MAXLEN`), or a verdict.
    static let data: AttributePolicy = .exactly([
        NFTA_DATA_VALUE.u16: .bytes(max: 64),
        NFTA_DATA_VERDICT.u16: .verdict,
    ])

    /// The attributes of each expression kind zonewall writes, with their types.
    static let expressionPolicies: [String: [UInt16: AttributePolicy]] = [
        "meta": [NFTA_META_KEY.u16: .u32, NFTA_META_DREG.u16: .u32],
        "payload": [NFTA_PAYLOAD_DREG.u16: .u32, NFTA_PAYLOAD_BASE.u16: .u32, NFTA_PAYLOAD_OFFSET.u16: .u32, NFTA_PAYLOAD_LEN.u16: .u32],
        "ct": [NFTA_CT_KEY.u16: .u32, NFTA_CT_DREG.u16: .u32, NFTA_CT_SREG.u16: .u32],
        "socket": [NFTA_SOCKET_KEY.u16: .u32, NFTA_SOCKET_DREG.u16: .u32, NFTA_SOCKET_LEVEL.u16: .u32],
        "cmp": [NFTA_CMP_SREG.u16: .u32, NFTA_CMP_OP.u16: .u32, NFTA_CMP_DATA.u16: data],
        // Newer kernels report the operation; 0 is the mask-and-xor form nft uses here.
        "bitwise": [NFTA_BITWISE_SREG.u16: .u32, NFTA_BITWISE_DREG.u16: .u32, NFTA_BITWISE_LEN.u16: .u32,
                    NFTA_BITWISE_MASK.u16: data, NFTA_BITWISE_XOR.u16: data, NFTA_BITWISE_OP.u16: .u32],
        "byteorder": [NFTA_BYTEORDER_SREG.u16: .u32, NFTA_BYTEORDER_DREG.u16: .u32, NFTA_BYTEORDER_OP.u16: .u32,
                      NFTA_BYTEORDER_LEN.u16: .u32, NFTA_BYTEORDER_SIZE.u16: .u32],
        "lookup": [NFTA_LOOKUP_SET.u16: .nulString, NFTA_LOOKUP_SREG.u16: .u32, NFTA_LOOKUP_DREG.u16: .u32,
                   NFTA_LOOKUP_SET_ID.u16: .u32, NFTA_LOOKUP_FLAGS.u16: .u32],
        "immediate": [NFTA_IMMEDIATE_DREG.u16: .u32, NFTA_IMMEDIATE_DATA.u16: data],
        "counter": [NFTA_COUNTER_BYTES.u16: .u64, NFTA_COUNTER_PACKETS.u16: .u64, NFTA_COUNTER_PAD.u16: .binary],
        "limit": [NFTA_LIMIT_RATE.u16: .u64, NFTA_LIMIT_UNIT.u16: .u64, NFTA_LIMIT_BURST.u16: .u32,
                  NFTA_LIMIT_TYPE.u16: .u32, NFTA_LIMIT_FLAGS.u16: .u32, NFTA_LIMIT_PAD.u16: .binary],
        "log": [NFTA_LOG_PREFIX.u16: .nulString, NFTA_LOG_GROUP.u16: .u16, NFTA_LOG_LEVEL.u16: .u32, NFTA_LOG_FLAGS.u16: .u32],
        "reject": [NFTA_REJECT_TYPE.u16: .u32, NFTA_REJECT_ICMP_CODE.u16: .u8],
    ]

    /// The top-level attributes of a rule libnftnl may see.
    static let rule: [UInt16: AttributePolicy] = [
        NFTA_RULE_TABLE.u16: .string, NFTA_RULE_CHAIN.u16: .string, NFTA_RULE_HANDLE.u16: .u64,
        NFTA_RULE_EXPRESSIONS.u16: .list(.expression), NFTA_RULE_USERDATA.u16: .binary,
        NFTA_RULE_POSITION.u16: .u64, NFTA_RULE_ID.u16: .u32,
    ]

    /// What the kernel reported of a rule.
    struct Decoded {
        var table: String?
        var chain: String?
        var handle: UInt64
        var expressions: [KernelExpression]
        var userData: [UInt8]?
    }

    /// The rule of an `NFT_MSG_NEWRULE` message, or nil when it holds something zonewall never
    /// writes (or libnftnl cannot parse it).
    static func decode(_ m: NetlinkMessage) -> Decoded? {
        // Any attribute outside the policy (a compat match, say) makes it a foreign rule.
        guard m.attributes.allSatisfy({ rule[$0.type] != nil }) else { return nil }
        let r = nftnl_rule_alloc()!
        defer { nftnl_rule_free(r) }
        let ok = withParsableHeader(m, policy: rule) { nftnl_rule_nlmsg_parse($0, r) >= 0 } ?? false
        guard ok else { return nil }
        func has(_ a: UInt16) -> Bool { nftnl_rule_is_set(r, a) }
        var out = Decoded(table: has(NFTNL_RULE_TABLE.u16) ? String(cString: nftnl_rule_get_str(r, NFTNL_RULE_TABLE.u16)) : nil,
                          chain: has(NFTNL_RULE_CHAIN.u16) ? String(cString: nftnl_rule_get_str(r, NFTNL_RULE_CHAIN.u16)) : nil,
                          handle: has(NFTNL_RULE_HANDLE.u16) ? nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE.u16) : 0,
                          expressions: [], userData: nil)
        if has(NFTNL_RULE_USERDATA.u16) {
            var len: UInt32 = 0
            if let p = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA.u16, &len) { out.userData = Array(UnsafeRawBufferPointer(start: p, count: Int(len))) }
        }
        guard let iter = nftnl_expr_iter_create(r) else { return nil }
        defer { nftnl_expr_iter_destroy(iter) }
        while let e = nftnl_expr_iter_next(iter) {
            out.expressions.append(expression(e))
        }
        return out
    }

    /// One expression, read with libnftnl's getters.
    static func expression(_ e: OpaquePointer) -> KernelExpression {
        let name = String(cString: nftnl_expr_get_str(e, UInt16(NFTNL_EXPR_NAME)))
        func has(_ a: Int) -> Bool { nftnl_expr_is_set(e, UInt16(a)) }
        func u32(_ a: Int) -> UInt32? { has(a) ? nftnl_expr_get_u32(e, UInt16(a)) : nil }
        func u64(_ a: Int) -> UInt64? { has(a) ? nftnl_expr_get_u64(e, UInt16(a)) : nil }
        func str(_ a: Int) -> String? { has(a) ? String(cString: nftnl_expr_get_str(e, UInt16(a))) : nil }
        func bytes(_ a: Int) -> [UInt8]? {
            guard has(a) else { return nil }
            var len: UInt32 = 0
            guard let p = nftnl_expr_get(e, UInt16(a), &len) else { return nil }
            return Array(UnsafeRawBufferPointer(start: p, count: Int(len)))
        }
        let unknown = KernelExpression.unknown(name)

        switch name {
        case "meta":
            guard let k = u32(NFTNL_EXPR_META_KEY), let d = u32(NFTNL_EXPR_META_DREG) else { return unknown }
            return .meta(key: k, dreg: d)
        case "payload":
            guard let d = u32(NFTNL_EXPR_PAYLOAD_DREG), let b = u32(NFTNL_EXPR_PAYLOAD_BASE),
                  let o = u32(NFTNL_EXPR_PAYLOAD_OFFSET), let l = u32(NFTNL_EXPR_PAYLOAD_LEN) else { return unknown }
            return .payload(base: b, offset: o, length: l, dreg: d)
        case "ct":
            guard let k = u32(NFTNL_EXPR_CT_KEY) else { return unknown }
            if let s = u32(NFTNL_EXPR_CT_SREG), !has(NFTNL_EXPR_CT_DREG) { return .ctSet(key: k, sreg: s) }
            guard let d = u32(NFTNL_EXPR_CT_DREG), !has(NFTNL_EXPR_CT_SREG) else { return unknown }
            return .ct(key: k, dreg: d)
        case "socket":
            guard let k = u32(NFTNL_EXPR_SOCKET_KEY), let d = u32(NFTNL_EXPR_SOCKET_DREG) else { return unknown }
            return .socket(key: k, level: u32(NFTNL_EXPR_SOCKET_LEVEL) ?? 0, dreg: d)
        case "cmp":
            guard let s = u32(NFTNL_EXPR_CMP_SREG), let op = u32(NFTNL_EXPR_CMP_OP), let v = bytes(NFTNL_EXPR_CMP_DATA) else { return unknown }
            return .cmp(op: op, sreg: s, data: v)
        case "bitwise":
            guard (u32(NFTNL_EXPR_BITWISE_OP) ?? 0) == 0, !has(NFTNL_EXPR_BITWISE_DATA),
                  let s = u32(NFTNL_EXPR_BITWISE_SREG), let d = u32(NFTNL_EXPR_BITWISE_DREG), let l = u32(NFTNL_EXPR_BITWISE_LEN),
                  let m = bytes(NFTNL_EXPR_BITWISE_MASK), let x = bytes(NFTNL_EXPR_BITWISE_XOR) else { return unknown }
            return .bitwise(sreg: s, dreg: d, length: l, mask: m, xor: x)
        case "byteorder":
            guard let s = u32(NFTNL_EXPR_BYTEORDER_SREG), let d = u32(NFTNL_EXPR_BYTEORDER_DREG), let op = u32(NFTNL_EXPR_BYTEORDER_OP),
                  let l = u32(NFTNL_EXPR_BYTEORDER_LEN), let z = u32(NFTNL_EXPR_BYTEORDER_SIZE) else { return unknown }
            return .byteorder(sreg: s, dreg: d, op: op, length: l, size: z)
        case "lookup":
            let flags = u32(NFTNL_EXPR_LOOKUP_FLAGS) ?? 0
            guard flags & ~NFT_LOOKUP_F_INV.u32 == 0, let set = str(NFTNL_EXPR_LOOKUP_SET), let s = u32(NFTNL_EXPR_LOOKUP_SREG) else { return unknown }
            return .lookup(sreg: s, set: set, setID: nil, dreg: u32(NFTNL_EXPR_LOOKUP_DREG), inverted: flags != 0)
        case "immediate":
            guard u32(NFTNL_EXPR_IMM_DREG) == NFT_REG_VERDICT.u32, !has(NFTNL_EXPR_IMM_DATA),
                  let code = u32(NFTNL_EXPR_IMM_VERDICT),
                  let v = verdict(code: code, chain: str(NFTNL_EXPR_IMM_CHAIN)) else { return unknown }
            return .immediate(v)
        case "counter":
            return .counter
        case "limit":
            guard let r = u64(NFTNL_EXPR_LIMIT_RATE), let u = u64(NFTNL_EXPR_LIMIT_UNIT) else { return unknown }
            return .limit(rate: r, unit: u, burst: u32(NFTNL_EXPR_LIMIT_BURST) ?? 0, type: u32(NFTNL_EXPR_LIMIT_TYPE) ?? 0,
                          flags: u32(NFTNL_EXPR_LIMIT_FLAGS) ?? 0)
        case "log" where has(NFTNL_EXPR_LOG_GROUP):
            guard !has(NFTNL_EXPR_LOG_LEVEL), !has(NFTNL_EXPR_LOG_FLAGS), let p = str(NFTNL_EXPR_LOG_PREFIX) else { return unknown }
            return .nflog(group: nftnl_expr_get_u16(e, UInt16(NFTNL_EXPR_LOG_GROUP)), prefix: p)
        case "log":
            // The kernel reports the default syslog level (warning) that nft leaves unset.
            guard (u32(NFTNL_EXPR_LOG_LEVEL) ?? 4) == 4, (u32(NFTNL_EXPR_LOG_FLAGS) ?? 0) == 0,
                  let p = str(NFTNL_EXPR_LOG_PREFIX) else { return unknown }
            return .log(prefix: p)
        case "reject":
            guard let t = u32(NFTNL_EXPR_REJECT_TYPE) else { return unknown }
            return .reject(type: t, code: has(NFTNL_EXPR_REJECT_CODE) ? nftnl_expr_get_u8(e, UInt16(NFTNL_EXPR_REJECT_CODE)) : 0)
        default:
            return unknown
        }
    }

    static func verdict(code: UInt32, chain: String?) -> Verdict? {
        switch Int32(bitPattern: code) {
        case NF_ACCEPT: .accept
        case NF_DROP: .drop
        case NFT_CONTINUE.rawValue: .continue
        case NFT_RETURN.rawValue: .return
        case NFT_JUMP.rawValue: chain.map(Verdict.jump)
        case NFT_GOTO.rawValue: chain.map(Verdict.goto)
        default: nil
        }
    }

    /// A description of a rule that is not zonewall's, from its raw attributes: each
    /// expression's name and attribute numbers.
    static func summary(_ m: NetlinkMessage) -> String {
        let a = m.attributes
        let others = a.filter { rule[$0.type] == nil }.map { "attribute \($0.type)" }
        let exprs = (a[NFTA_RULE_EXPRESSIONS.u16]?.nested).map { list in
            list.map { e -> String in
                let name = e.nested[NFTA_EXPR_NAME.u16]?.string ?? "?"
                let attrs = (e.nested[NFTA_EXPR_DATA.u16]?.nested).map { $0.map { String($0.type) } } ?? []
                return "[\(name) [attributes \(attrs.joined(separator: ", "))]]"
            }
        } ?? []
        return (exprs + others).joined(separator: " ")
    }
}
