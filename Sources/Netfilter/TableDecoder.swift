import CNetfilter
import Ruleset

/// Decodes dumped kernel objects (`NFT_MSG_NEW*` messages) into the model.
struct TableDecoder {
    var family: Family
    var strict: Bool
    /// Who reads set elements: libnftnl, or the hand-written fast path (they agree:
    /// `ElementPathTests`).
    var elementPath: BatchEncoder.ElementPath = NetlinkKernel.elementPath

    /// The table-level attributes of an `NFT_MSG_NEWTABLE` message (`nftnl_table_nlmsg_parse`):
    /// its flags and user data; nil for another table.
    func tableAttributes(_ m: NetlinkMessage, table: String) -> (flags: TableFlags, userData: [UInt8]?)? {
        guard let t = NftnlTable.parse(m) else {
            // Unparsable but ours: flags no compiled table has, so that it is drift.
            guard m.attributes[NFTA_TABLE_NAME.u16]?.string == table else { return nil }
            return (TableFlags(rawValue: .max), nil)
        }
        guard t.name == table else { return nil }
        return (TableFlags(rawValue: t.flags), t.userData)
    }

    /// A chain without its rules (`nftnl_chain_nlmsg_parse`); nil for a message of another table.
    func chain(_ m: NetlinkMessage, table: String) -> Chain? {
        guard let c = NftnlChain.parse(m) else {
            // Unparsable but ours: flags no compiled chain has, so that it is drift.
            let a = m.attributes
            guard a[NFTA_CHAIN_TABLE.u16]?.string == table, let name = a[NFTA_CHAIN_NAME.u16]?.string else { return nil }
            return Chain(name: name, flags: .max)
        }
        guard c.table == table else { return nil }
        return c.model
    }

    /// A set's declaration (no elements) and how its elements are stored
    /// (`nftnl_set_nlmsg_parse`); nil for another table.
    func set(_ m: NetlinkMessage, table: String) -> (NamedSet, SetShape)? {
        guard let s = NftnlSet.parse(m) else {
            // Unparsable but ours (an element expression libnftnl does not know, say): a key
            // type no zonewall set has, so that it differs from every desired set.
            let a = m.attributes
            guard a[NFTA_SET_TABLE.u16]?.string == table, let name = a[NFTA_SET_NAME.u16]?.string else { return nil }
            let foreign = NamedSet(name: name, keyType: [DataType.unknownWidth])
            return (foreign, SetShape(foreign))
        }
        guard s.str(NFTNL_SET_TABLE.u16) == table, let name = s.str(NFTNL_SET_NAME.u16) else { return nil }
        var flags = s.u32(NFTNL_SET_FLAGS.u16) ?? 0
        let keyID = s.u32(NFTNL_SET_KEY_TYPE.u16) ?? 0
        let keyLength = Int(s.u32(NFTNL_SET_KEY_LEN.u16) ?? 0)
        var keyType = Self.splitConcatenation(keyID)
        if keyType.count > 1, keyType.reduce(0, { $0 + $1.paddedWidth }) != keyLength {
            keyType = [DataType(rawValue: keyID)]  // not a concatenation after all
        }
        var dataType: DataType?
        if let d = s.u32(NFTNL_SET_DATA_TYPE.u16) {
            dataType = d == NFT_DATA_VERDICT.u32 ? .verdict : DataType(rawValue: d)
        }
        if keyType.count > 1, flags & SetFlags.interval.rawValue != 0 { flags &= ~NFT_SET_CONCAT.u32 }
        var set = NamedSet(name: name, keyType: keyType, dataType: dataType, flags: SetFlags(rawValue: flags))
        set.timeout = s.u64(NFTNL_SET_TIMEOUT.u16)
        set.gcInterval = s.u32(NFTNL_SET_GC_INTERVAL.u16)
        set.size = s.u32(NFTNL_SET_DESC_SIZE.u16)
        set.policy = SetPolicy(rawValue: s.u32(NFTNL_SET_POLICY.u16) ?? SetPolicy.performance.rawValue)
        // libnftnl parses element expressions into objects; compare their bytes as the kernel sent them.
        let a = m.attributes
        if let e = a[NFTA_SET_EXPR.u16] ?? a[NFTA_SET_EXPRESSIONS.u16] { set.elementExpressions = Array(e.payload) }
        var shape = SetShape(set)
        if keyType.count == 1, keyType[0].width != keyLength {
            // Not a set zonewall makes (its types have fixed widths): give it a key type no
            // zonewall set has, so that it differs from every desired set; values are read
            // with the width of their bytes.
            set.keyType = [.unknownWidth]
            shape.keyType = [.unknownWidth]
        }
        let userData = s.data(NFTNL_SET_USERDATA.u16) ?? []
        set.userData = userData == SetUserData.encode(set) ? nil : userData
        return (set, shape)
    }

    /// nft packs a concatenation's component type ids 6 bits each (`DataType.concatenationID`).
    static func splitConcatenation(_ id: UInt32) -> [DataType] {
        guard id >= 1 << DataType.concatTypeBitsForDecoding else { return [DataType(rawValue: id)] }
        var types: [DataType] = []
        var rest = id
        let mask = UInt32(1 << DataType.concatTypeBitsForDecoding) - 1
        while rest != 0 {
            types.insert(DataType(rawValue: rest & mask), at: 0)
            rest >>= UInt32(DataType.concatTypeBitsForDecoding)
        }
        return types
    }

    /// Calls `body` with each kernel element of one `NFT_MSG_NEWSETELEM` dump message.
    ///
    /// Returns how many elements had no key: a catch-all (`NFT_SET_ELEM_CATCHALL`, nft's `*`),
    /// which zonewall never writes, or something it cannot read. They are not passed to `body`;
    /// the caller must treat the set as not zonewall's.
    @discardableResult
    func kernelElements(_ m: NetlinkMessage, shape: SetShape, _ body: (KernelElement) -> Void) -> Int {
        switch elementPath {
        case .libnftnl: ElementDecoding.kernelElements(m, shape: shape, body)
        case .direct: kernelElementsDirectly(m, shape: shape, body)
        }
    }

    /// The hand-written fast path of `kernelElements`: reads the attributes in place.
    @discardableResult
    func kernelElementsDirectly(_ m: NetlinkMessage, shape: SetShape, _ body: (KernelElement) -> Void) -> Int {
        var keyless = 0
        guard let list = m.attributes[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested else { return 0 }
        for elem in list {
            let a = elem.nested
            var k = KernelElement(key: [])
            for attr in a {
                switch attr.type {
                case NFTA_SET_ELEM_KEY.u16: k.key = values(attr, shape)
                case NFTA_SET_ELEM_KEY_END.u16: k.keyEnd = values(attr, shape)
                case NFTA_SET_ELEM_FLAGS.u16: k.isIntervalEnd = attr.u32 & NFT_SET_ELEM_INTERVAL_END.u32 != 0
                case NFTA_SET_ELEM_DATA.u16: k.data = Self.elementData(attr, shape)
                default: break
                }
            }
            if k.key.isEmpty { keyless += 1 } else { body(k) }
        }
        return keyless
    }

    /// An element's `NFTA_SET_ELEM_DATA`: a verdict, or a value of the set's data type.
    static func elementData(_ attr: NetlinkAttribute, _ shape: SetShape) -> ElementData? {
        if let v = KernelExpression.decodeVerdict(attr) { return .verdict(v) }
        if let raw = attr.nested[NFTA_DATA_VALUE.u16], !raw.payload.isEmpty {
            let t = shape.dataType ?? .integer
            return .value(value(raw.payload.prefix(16), bigEndian: t.isBigEndian))
        }
        guard shape.dataType == .verdict else { return nil }
        // A verdict zonewall never writes (queue, break, a jump without a chain): keep its code
        // as a value, so that it equals no desired element.
        let code = attr.nested[NFTA_DATA_VERDICT.u16]?.nested[NFTA_VERDICT_CODE.u16]?.u32 ?? 0
        return .value(Value(UInt64(code), width: 4))
    }

    /// `elementData` of an attribute's payload copied out of a `BorrowedAttribute` (the
    /// decoders of large dumps keep the copy, to reuse the datum for the next elements).
    static func elementData(_ payload: [UInt8], rawType: UInt16, _ shape: SetShape) -> ElementData? {
        elementData(NetlinkAttribute(rawType: rawType, offset: 0, payload: payload[...]), shape)
    }

    private func values(_ attr: NetlinkAttribute, _ shape: SetShape) -> [Value] {
        // An empty value cannot come from the kernel; in a damaged message it is no key at all.
        guard let raw = attr.nested[NFTA_DATA_VALUE.u16]?.payload, !raw.isEmpty else { return [] }
        return Self.keyValues(raw, shape)
    }

    /// A key's values as stored, one per component of the set's key type (each component of a
    /// concatenation padded to 4 bytes); fewer when the bytes run out.
    static func keyValues(_ raw: ArraySlice<UInt8>, _ shape: SetShape) -> [Value] {
        guard shape.isConcatenation else {
            let t = shape.keyType.first ?? .integer
            return [value(raw.prefix(16), bigEndian: t.isBigEndian)]
        }
        var out: [Value] = []
        out.reserveCapacity(shape.keyType.count)
        var i = raw.startIndex
        for t in shape.keyType {
            guard t.width > 0, t.width <= 16, i + t.width <= raw.endIndex else { return out }
            out.append(value(raw[i..<(i + t.width)], bigEndian: t.isBigEndian))
            i += t.paddedWidth
        }
        return out
    }

    /// The value of 1 to 16 bytes as stored: in network order, or in host (little-endian)
    /// order for the few types nft stores that way. Reads the bytes in place (a slice, or
    /// `BorrowedAttribute` bytes).
    static func value(_ bytes: some Collection<UInt8>, bigEndian: Bool) -> Value {
        bigEndian ? Value(bytes: bytes) : Value(bytes: bytes.reversed())
    }

    /// A rule and its chain; nil for another table. A rule zonewall cannot express becomes a
    /// rule that equals nothing zonewall generates (or, when `strict`, an error).
    func rule(_ m: NetlinkMessage, table: String) throws(NetfilterError) -> (chain: String, rule: Rule)? {
        let a = m.attributes
        guard a[NFTA_RULE_TABLE.u16]?.string == table, let chain = a[NFTA_RULE_CHAIN.u16]?.string else { return nil }
        let decoded = RuleDecoding.decode(m)
        if let decoded, decoded.table == table, decoded.chain == chain {
            var comment: String?, userData: [UInt8]?
            if let udata = decoded.userData { (comment, userData) = RuleUserData.decode(udata[...]) }
            if let exprs = RuleLifting(family: family).lift(decoded.expressions) {
                return (chain, Rule(exprs, comment: comment, userData: userData))
            }
        }
        let handle = decoded?.handle ?? a[NFTA_RULE_HANDLE.u16]?.u64 ?? 0
        let summary = decoded.map { $0.expressions.map(Self.summary).joined(separator: " ") } ?? RuleDecoding.summary(m)
        if strict {
            throw NetfilterError(operation: "decoding rule (handle \(handle)) of chain \(chain)", errno: 0,
                                 detail: "not a rule zonewall generates: \(summary)")
        }
        return (chain, Rule([], comment: Self.undecodableMarker + "handle \(handle): " + summary))
    }

    /// Prefix of the comment of a rule that stands in for one zonewall cannot decode.
    static let undecodableMarker = "zonewall: undecodable kernel rule "

    static func summary(_ e: KernelExpression) -> String {
        switch e {
        case .unknown(let s): "[\(s)]"
        default: "[\(e)]"
        }
    }
}

extension DataType {
    /// `concatTypeBits` is internal to `Ruleset`; nft's `TYPE_BITS` is 6.
    static var concatTypeBitsForDecoding: Int { 6 }
}
