import CNetfilter
import Ruleset

// Set elements of a dump, decoded by libnftnl: `nftnl_set_elems_nlmsg_parse`, an
// `nftnl_set_elems_iter`, and the element getters. As for rules, a message is checked against
// a policy first, since libnftnl exits on a malformed attribute.

enum ElementDecoding {
    static let value: AttributePolicy = .exactly([NFTA_DATA_VALUE.u16: .bytes(max: 64)])

    /// The attributes of one element zonewall's sets can have (no per-element expressions or
    /// object references: zonewall writes none).
    static let element: AttributePolicy = .exactly([
        NFTA_SET_ELEM_KEY.u16: value, NFTA_SET_ELEM_KEY_END.u16: value, NFTA_SET_ELEM_DATA.u16: RuleDecoding.data,
        NFTA_SET_ELEM_FLAGS.u16: .u32, NFTA_SET_ELEM_TIMEOUT.u16: .u64, NFTA_SET_ELEM_EXPIRATION.u16: .u64,
        NFTA_SET_ELEM_USERDATA.u16: .binary,
    ])

    static let list: [UInt16: AttributePolicy] = [
        NFTA_SET_ELEM_LIST_TABLE.u16: .string, NFTA_SET_ELEM_LIST_SET.u16: .string,
        NFTA_SET_ELEM_LIST_SET_ID.u16: .u32, NFTA_SET_ELEM_LIST_ELEMENTS.u16: .list(element),
    ]

    /// Calls `body` with each element of one `NFT_MSG_NEWSETELEM` message; returns how many
    /// elements have no key (a catch-all), or, for a message libnftnl is not given, how many
    /// elements it holds: either way the caller treats the set as not zonewall's.
    static func kernelElements(_ m: NetlinkMessage, shape: SetShape, _ body: (KernelElement) -> Void) -> Int {
        let raw = m.attributes[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested.reduce(0) { n, _ in n + 1 } ?? 0
        guard m.attributes.allSatisfy({ list[$0.type] != nil }) else { return max(raw, 1) }
        guard let set = nftnl_set_alloc() else { fatalError("nftnl_set_alloc: out of memory") }
        defer { nftnl_set_free(set) }
        let parsed = withParsableHeader(m, policy: list) { nftnl_set_elems_nlmsg_parse($0, set) >= 0 } ?? false
        guard parsed else { return max(raw, 1) }
        guard let iter = nftnl_set_elems_iter_create(set) else { return max(raw, 1) }
        defer { nftnl_set_elems_iter_destroy(iter) }
        var keyless = 0
        while let e = nftnl_set_elems_iter_next(iter) {
            func has(_ a: Int) -> Bool { nftnl_set_elem_is_set(e, UInt16(a)) }
            func bytes(_ a: Int) -> ArraySlice<UInt8>? {
                guard has(a) else { return nil }
                var len: UInt32 = 0
                guard let p = nftnl_set_elem_get(e, UInt16(a), &len), len > 0 else { return nil }
                return Array(UnsafeRawBufferPointer(start: p, count: Int(len)))[...]
            }
            guard let key = bytes(NFTNL_SET_ELEM_KEY).map({ TableDecoder.keyValues($0, shape) }), !key.isEmpty else {
                keyless += 1
                continue
            }
            var k = KernelElement(key: key)
            k.keyEnd = bytes(NFTNL_SET_ELEM_KEY_END).map { TableDecoder.keyValues($0, shape) }
            if has(NFTNL_SET_ELEM_FLAGS) {
                k.isIntervalEnd = nftnl_set_elem_get_u32(e, UInt16(NFTNL_SET_ELEM_FLAGS)) & NFT_SET_ELEM_INTERVAL_END.u32 != 0
            }
            if has(NFTNL_SET_ELEM_VERDICT) {
                let code = nftnl_set_elem_get_u32(e, UInt16(NFTNL_SET_ELEM_VERDICT))
                let chain = has(NFTNL_SET_ELEM_CHAIN) ? String(cString: nftnl_set_elem_get_str(e, UInt16(NFTNL_SET_ELEM_CHAIN))) : nil
                if let v = RuleDecoding.verdict(code: code, chain: chain) {
                    k.data = .verdict(v)
                } else if shape.dataType == .verdict {
                    // A verdict zonewall never writes: keep its code, so it equals no desired element.
                    k.data = .value(Value(UInt64(code), width: 4))
                }
            } else if let d = bytes(NFTNL_SET_ELEM_DATA) {
                let t = shape.dataType ?? .integer
                k.data = .value(TableDecoder.value(d.prefix(16), bigEndian: t.isBigEndian))
            }
            body(k)
        }
        return keyless
    }
}
