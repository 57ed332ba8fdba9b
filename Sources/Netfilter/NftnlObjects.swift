import CNetfilter
import Glibc
import Ruleset

// Owned wrappers of libnftnl's table, chain and set objects. Each wrapper owns its object and
// frees it exactly once, in `deinit`; being `~Copyable`, it cannot be duplicated, and a raw
// pointer never leaves the `withUnsafe…` scope that needs it.

/// The nfnetlink message type of an nftables command: subsystem in the high byte.
func nftablesMessageType(_ command: nf_tables_msg_types) -> UInt16 {
    UInt16(NFNL_SUBSYS_NFTABLES) << 8 | command.u16
}

/// How libnftnl's parsers check one attribute (`mnl_attr_validate`). They do not fail on a
/// malformed attribute: they call `abi_breakage()`, which exits the process, and libnftnl 1.2.4
/// writes a set's concatenation field lengths without a bound. So a message is checked against
/// these rules first, and only what passes is handed to libnftnl.
indirect enum AttributePolicy: Sendable {
    case u8, u16, u32, u64, string, binary
    /// A string that ends in a NUL byte (`MNL_TYPE_NUL_STRING`).
    case nulString
    /// 1 to `max` bytes: a value libnftnl copies into a fixed-size register.
    case bytes(max: Int)
    /// A nest with only these members: another makes the whole message not zonewall's.
    case exactly([UInt16: AttributePolicy])
    /// One `NFTA_LIST_ELEM` of a rule's expressions: its name, and its data checked with
    /// that kind's policy (`RuleDecoding.expressionPolicies`). A kind zonewall does not know
    /// is not handed to libnftnl at all.
    case expression
    /// `NFTA_DATA_VERDICT`: a code, and a chain for jump and goto, both required.
    case verdict
    /// A nest whose known members are checked; others are ignored, as libnftnl ignores them.
    case nested([UInt16: AttributePolicy])
    /// A nest of list elements, each checked with the policy.
    case list(AttributePolicy)
    /// A set's `NFTA_SET_DESC_CONCAT`: at most 16 field lengths in all (`NFT_REG32_COUNT`).
    case concatenation

    /// Whether libnftnl can parse `a` under this policy without exiting or overflowing.
    func admits(_ a: NetlinkAttribute) -> Bool {
        let n = a.payload.count
        switch self {
        case .verdict:
            // libnftnl 1.2.4 parses a verdict into an uninitialised attribute table, then reads
            // the code, and for jump and goto the chain, without knowing whether they were there.
            let members = a.nested
            guard let code = members[NFTA_VERDICT_CODE.u16],
                  AttributePolicy.exactly([NFTA_VERDICT_CODE.u16: .u32, NFTA_VERDICT_CHAIN.u16: .nulString]).admits(a) else { return false }
            let jumps = [NFT_JUMP.rawValue, NFT_GOTO.rawValue].contains(Int32(bitPattern: code.u32))
            return !jumps || members[NFTA_VERDICT_CHAIN.u16] != nil
        case .u8: return n == 1
        case .u16: return n == 2
        case .nulString: return n > 0 && a.payload.last == 0
        case .bytes(let max): return n > 0 && n <= max
        case .exactly(let members):
            // No member twice: libnftnl keeps the last of a type, a check of the first would miss it.
            guard n == 0 || n >= 4, Self.noDuplicates(a.nested) else { return false }
            return a.nested.allSatisfy { members[$0.type]?.admits($0) ?? false }
        case .expression:
            guard n >= 4, a.type == NFTA_LIST_ELEM.u16, Self.noDuplicates(a.nested) else { return false }
            let members = a.nested
            guard let name = members[NFTA_EXPR_NAME.u16], AttributePolicy.nulString.admits(name),
                  let data = RuleDecoding.expressionPolicies[name.string] else { return false }
            guard members.allSatisfy({ $0.type == NFTA_EXPR_NAME.u16 || $0.type == NFTA_EXPR_DATA.u16 }) else { return false }
            guard let body = members[NFTA_EXPR_DATA.u16] else { return true }
            return AttributePolicy.exactly(data).admits(body)
        case .u32: return n == 4
        case .u64: return n == 8
        case .string: return n > 0
        case .binary: return true
        case .nested(let members):
            guard n == 0 || n >= 4 else { return false }
            return a.nested.allSatisfy { members[$0.type]?.admits($0) ?? true }
        case .list(let element):
            guard n == 0 || n >= 4 else { return false }
            return a.nested.allSatisfy { element.admits($0) }
        case .concatenation:
            guard n == 0 || n >= 4 else { return false }
            var fields = 0
            for element in a.nested {
                guard element.payload.isEmpty || element.payload.count >= 4 else { return false }
                for f in element.nested where f.type == NFTA_SET_FIELD_LEN.u16 {
                    guard f.payload.count == 4 else { return false }
                    fields += 1
                }
            }
            return fields <= 16
        }
    }

    /// Whether each attribute type occurs at most once.
    static func noDuplicates(_ attributes: NetlinkAttributes) -> Bool {
        // nf_tables' attribute types are small: a bit each, no hashing (every rule read back
        // checks each of its expressions this way).
        var seen: UInt64 = 0
        var large: Set<UInt16>?
        return attributes.allSatisfy { a in
            guard a.type < 64 else {
                if large == nil { large = [] }
                return large!.insert(a.type).inserted
            }
            let bit: UInt64 = 1 << a.type
            defer { seen |= bit }
            return seen & bit == 0
        }
    }

    static let table: [UInt16: AttributePolicy] = [
        NFTA_TABLE_NAME.u16: .string, NFTA_TABLE_FLAGS.u16: .u32, NFTA_TABLE_USE.u16: .u32,
        NFTA_TABLE_HANDLE.u16: .u64, NFTA_TABLE_USERDATA.u16: .binary, NFTA_TABLE_OWNER.u16: .u32,
    ]

    static let chain: [UInt16: AttributePolicy] = [
        NFTA_CHAIN_TABLE.u16: .string, NFTA_CHAIN_NAME.u16: .string, NFTA_CHAIN_TYPE.u16: .string,
        NFTA_CHAIN_HANDLE.u16: .u64, NFTA_CHAIN_POLICY.u16: .u32, NFTA_CHAIN_USE.u16: .u32,
        NFTA_CHAIN_FLAGS.u16: .u32, NFTA_CHAIN_ID.u16: .u32, NFTA_CHAIN_USERDATA.u16: .binary,
        NFTA_CHAIN_HOOK.u16: .nested([NFTA_HOOK_HOOKNUM.u16: .u32, NFTA_HOOK_PRIORITY.u16: .u32,
                                      NFTA_HOOK_DEV.u16: .string, NFTA_HOOK_DEVS.u16: .list(.string)]),
        NFTA_CHAIN_COUNTERS.u16: .nested([NFTA_COUNTER_BYTES.u16: .u64, NFTA_COUNTER_PACKETS.u16: .u64]),
    ]

    /// Without `NFTA_SET_EXPR(ESSIONS)`: libnftnl would parse every expression in them (each
    /// kind with its own exiting checks); `TableDecoder` keeps their bytes itself.
    static let set: [UInt16: AttributePolicy] = [
        NFTA_SET_TABLE.u16: .string, NFTA_SET_NAME.u16: .string, NFTA_SET_HANDLE.u16: .u64,
        NFTA_SET_FLAGS.u16: .u32, NFTA_SET_KEY_TYPE.u16: .u32, NFTA_SET_KEY_LEN.u16: .u32,
        NFTA_SET_DATA_TYPE.u16: .u32, NFTA_SET_DATA_LEN.u16: .u32, NFTA_SET_ID.u16: .u32,
        NFTA_SET_POLICY.u16: .u32, NFTA_SET_GC_INTERVAL.u16: .u32, NFTA_SET_OBJ_TYPE.u16: .u32,
        NFTA_SET_TIMEOUT.u16: .u64, NFTA_SET_USERDATA.u16: .binary,
        NFTA_SET_DESC.u16: .nested([NFTA_SET_DESC_SIZE.u16: .u32, NFTA_SET_DESC_CONCAT.u16: .concatenation]),
    ]
}

/// Runs `body` with the message as a `nlmsghdr` libnftnl can parse safely: only its
/// attributes that `policy` knows and admits, copied with zero bytes after them (libmnl does
/// not check that strings are NUL-terminated, and libnftnl `strdup`s them). Returns nil when
/// an attribute fails its policy, or the message is too short for the `nfgenmsg` libnftnl
/// reads unconditionally.
func withParsableHeader<R>(_ m: NetlinkMessage, policy: [UInt16: AttributePolicy], _ body: (UnsafePointer<nlmsghdr>) -> R) -> R? {
    guard m.payload.count >= 4 else { return nil }
    var attributes: [UInt8] = []
    for a in m.attributes {
        guard let rule = policy[a.type] else { continue }
        guard rule.admits(a) else { return nil }
        let whole = m.payload[(a.offset)..<(a.payload.endIndex)]
        attributes += whole
        while attributes.count % 4 != 0 { attributes.append(0) }
    }
    let length = 16 + 4 + attributes.count
    var copy = [UInt8](repeating: 0, count: length + 8)
    withUnsafeBytes(of: UInt32(length)) { copy.replaceSubrange(0..<4, with: $0) }
    withUnsafeBytes(of: m.type) { copy.replaceSubrange(4..<6, with: $0) }
    withUnsafeBytes(of: m.flags) { copy.replaceSubrange(6..<8, with: $0) }
    withUnsafeBytes(of: m.seq) { copy.replaceSubrange(8..<12, with: $0) }
    withUnsafeBytes(of: m.portID) { copy.replaceSubrange(12..<16, with: $0) }
    copy.replaceSubrange(16..<20, with: m.payload.prefix(4))
    copy.replaceSubrange(20..<length, with: attributes)
    return copy.withUnsafeBytes { raw in body(raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)) }
}

/// Builds one nftables message with libnftnl (`nftnl_nlmsg_build_hdr`, then `payload`) and
/// appends it to `w`.
private func appendBuilt(to w: inout NetlinkWriter, command: nf_tables_msg_types, family: UInt8, flags: Int32, seq: UInt32,
                         capacity: Int, _ payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
    var buffer = [UInt8](repeating: 0, count: max(capacity, 256))
    let length = buffer.withUnsafeMutableBytes { raw -> Int in
        let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
        guard let nlh = nftnl_nlmsg_build_hdr(base, nftablesMessageType(command), UInt16(family), UInt16(flags), seq) else {
            fatalError("nftnl_nlmsg_build_hdr failed")
        }
        payload(nlh)
        return Int(nlh.pointee.nlmsg_len)
    }
    precondition(length <= buffer.count, "libnftnl wrote past its buffer")
    w.appendMessage(buffer[0..<length])
}

/// Appends a batch begin (`nftnl_batch_begin`) to `w`, pinned to `generation` if given
/// (`NFNL_BATCH_GENID`, with `mnl_attr_put_u32`: the kernel then refuses the batch with
/// `ERESTART` if the ruleset moved on).
func appendBatchBegin(to w: inout NetlinkWriter, seq: UInt32, generation: UInt32?) {
    appendFramed(to: &w) { buffer in
        let nlh = nftnl_batch_begin(buffer, seq)!
        if let generation { mnl_attr_put_u32(nlh, NFNL_BATCH_GENID.u16, generation.bigEndian) }
        return nlh
    }
}

/// Appends a batch end (`nftnl_batch_end`) to `w`: the kernel commits when it reads it.
func appendBatchEnd(to w: inout NetlinkWriter, seq: UInt32) {
    appendFramed(to: &w) { nftnl_batch_end($0, seq)! }
}

private func appendFramed(to w: inout NetlinkWriter, _ build: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>) {
    var buffer = [UInt8](repeating: 0, count: 64)
    let length = buffer.withUnsafeMutableBytes { raw in
        Int(build(raw.baseAddress!.assumingMemoryBound(to: CChar.self)).pointee.nlmsg_len)
    }
    precondition(length <= buffer.count, "libnftnl wrote past its buffer")
    w.appendMessage(buffer[0..<length])
}

/// Reads a libnftnl object's binary attribute (`nftnl_*_get_data`).
private func bytes(_ pointer: UnsafeRawPointer?, _ length: UInt32) -> [UInt8]? {
    guard let pointer else { return nil }
    return Array(UnsafeRawBufferPointer(start: pointer, count: Int(length)))
}

private func cString(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

// MARK: Generations

/// Owns one `nftnl_gen` (`nftnl_gen_alloc` / `nftnl_gen_free`): the generation an
/// `NFT_MSG_NEWGEN` announces.
struct NftnlGen: ~Copyable {
    private let pointer: OpaquePointer

    static let policy: [UInt16: AttributePolicy] = [
        NFTA_GEN_ID.u16: .u32, NFTA_GEN_PROC_PID.u16: .u32, NFTA_GEN_PROC_NAME.u16: .nulString,
    ]

    private init() {
        guard let p = nftnl_gen_alloc() else { fatalError("nftnl_gen_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_gen_free(pointer) }

    /// The generation of an `NFT_MSG_NEWGEN` message (`nftnl_gen_nlmsg_parse`); nil if it has
    /// none, or libnftnl cannot parse it.
    static func generation(of m: NetlinkMessage) -> UInt32? {
        let g = NftnlGen()
        let ok = withParsableHeader(m, policy: policy) { nftnl_gen_nlmsg_parse($0, g.pointer) >= 0 } ?? false
        guard ok, nftnl_gen_is_set(g.pointer, UInt16(NFTNL_GEN_ID)) else { return nil }
        return nftnl_gen_get_u32(g.pointer, UInt16(NFTNL_GEN_ID))
    }
}

// MARK: Tables

/// Owns one `nftnl_table` (`nftnl_table_alloc` / `nftnl_table_free`).
struct NftnlTable: ~Copyable {
    private let pointer: OpaquePointer

    /// An empty table object.
    init() {
        guard let p = nftnl_table_alloc() else { fatalError("nftnl_table_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_table_free(pointer) }

    /// The table of an `NFT_MSG_NEWTABLE` message (`nftnl_table_nlmsg_parse`); nil if libnftnl
    /// cannot parse it.
    static func parse(_ m: NetlinkMessage) -> NftnlTable? {
        let t = NftnlTable()
        let ok = withParsableHeader(m, policy: AttributePolicy.table) { nftnl_table_nlmsg_parse($0, t.pointer) >= 0 } ?? false
        guard ok else { return nil }
        return .some(t)
    }

    /// The table's name (`NFTNL_TABLE_NAME`).
    var name: String? {
        nftnl_table_is_set(pointer, NFTNL_TABLE_NAME.u16) ? cString(nftnl_table_get_str(pointer, NFTNL_TABLE_NAME.u16)) : nil
    }

    /// `NFTNL_TABLE_FLAGS`, 0 when absent.
    var flags: UInt32 {
        nftnl_table_is_set(pointer, NFTNL_TABLE_FLAGS.u16) ? nftnl_table_get_u32(pointer, NFTNL_TABLE_FLAGS.u16) : 0
    }

    /// `NFTNL_TABLE_USERDATA`, nil when absent.
    var userData: [UInt8]? {
        guard nftnl_table_is_set(pointer, NFTNL_TABLE_USERDATA.u16) else { return nil }
        var len: UInt32 = 0
        return bytes(nftnl_table_get_data(pointer, NFTNL_TABLE_USERDATA.u16, &len), len)
    }

    /// Appends an `NFT_MSG_NEWTABLE` for `name` to `w` (`nftnl_table_nlmsg_build_payload`).
    /// Without `flags` the message leaves an existing table's flags as they are.
    static func appendNew(to w: inout NetlinkWriter, family: Family, name: String, flags: TableFlags?, userData: [UInt8]?,
                          messageFlags: Int32, seq: UInt32) {
        let t = NftnlTable()
        nftnl_table_set_str(t.pointer, NFTNL_TABLE_NAME.u16, name)
        if let flags { nftnl_table_set_u32(t.pointer, NFTNL_TABLE_FLAGS.u16, flags.rawValue) }
        if let userData {
            userData.withUnsafeBytes { _ = nftnl_table_set_data(t.pointer, NFTNL_TABLE_USERDATA.u16, $0.baseAddress, UInt32($0.count)) }
        }
        appendBuilt(to: &w, command: NFT_MSG_NEWTABLE, family: family.rawValue, flags: messageFlags, seq: seq,
                    capacity: 128 + name.utf8.count + (userData?.count ?? 0)) { nftnl_table_nlmsg_build_payload($0, t.pointer) }
    }

    /// Appends an `NFT_MSG_DELTABLE` for `name` to `w`.
    static func appendDelete(to w: inout NetlinkWriter, family: Family, name: String, messageFlags: Int32, seq: UInt32) {
        let t = NftnlTable()
        nftnl_table_set_str(t.pointer, NFTNL_TABLE_NAME.u16, name)
        appendBuilt(to: &w, command: NFT_MSG_DELTABLE, family: family.rawValue, flags: messageFlags, seq: seq,
                    capacity: 128 + name.utf8.count) { nftnl_table_nlmsg_build_payload($0, t.pointer) }
    }
}

// MARK: Chains

/// Owns one `nftnl_chain` (`nftnl_chain_alloc` / `nftnl_chain_free`).
struct NftnlChain: ~Copyable {
    private let pointer: OpaquePointer

    /// An empty chain object.
    init() {
        guard let p = nftnl_chain_alloc() else { fatalError("nftnl_chain_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_chain_free(pointer) }

    /// The chain of an `NFT_MSG_NEWCHAIN` message (`nftnl_chain_nlmsg_parse`); nil if libnftnl
    /// cannot parse it.
    static func parse(_ m: NetlinkMessage) -> NftnlChain? {
        let c = NftnlChain()
        let ok = withParsableHeader(m, policy: AttributePolicy.chain) { nftnl_chain_nlmsg_parse($0, c.pointer) >= 0 } ?? false
        guard ok else { return nil }
        return .some(c)
    }

    private func has(_ attr: UInt16) -> Bool { nftnl_chain_is_set(pointer, attr) }
    private func str(_ attr: UInt16) -> String? { has(attr) ? cString(nftnl_chain_get_str(pointer, attr)) : nil }
    private func u32(_ attr: UInt16) -> UInt32? { has(attr) ? nftnl_chain_get_u32(pointer, attr) : nil }

    /// `NFTNL_CHAIN_TABLE`.
    var table: String? { str(NFTNL_CHAIN_TABLE.u16) }

    /// The chain in the model, without rules: base chain attributes, flags (without
    /// `NFT_CHAIN_BASE`) and user data.
    var model: Chain? {
        guard let name = str(NFTNL_CHAIN_NAME.u16) else { return nil }
        var chain = Chain(name: name)
        if let hook = u32(NFTNL_CHAIN_HOOKNUM.u16) {
            let prio = has(NFTNL_CHAIN_PRIO.u16) ? nftnl_chain_get_s32(pointer, NFTNL_CHAIN_PRIO.u16) : 0
            // Any policy but accept reads as drop, as nft lists it; the kernel accepts only these two.
            let policy: Verdict = (u32(NFTNL_CHAIN_POLICY.u16) ?? UInt32(NF_ACCEPT)) == UInt32(NF_ACCEPT) ? .accept : .drop
            chain.base = BaseChain(type: ChainType(rawValue: str(NFTNL_CHAIN_TYPE.u16) ?? "filter"), hook: Hook(rawValue: hook),
                                   priority: prio, policy: policy, device: str(NFTNL_CHAIN_DEV.u16))
        }
        chain.flags = (u32(NFTNL_CHAIN_FLAGS.u16) ?? 0) & ~NFT_CHAIN_BASE.u32
        if has(NFTNL_CHAIN_USERDATA.u16) {
            var len: UInt32 = 0
            chain.userData = bytes(nftnl_chain_get_data(pointer, NFTNL_CHAIN_USERDATA.u16, &len), len)
        }
        return chain
    }

    /// Appends an `NFT_MSG_NEWCHAIN` declaring `chain` (no rules) to `w`
    /// (`nftnl_chain_nlmsg_build_payload`).
    static func appendNew(to w: inout NetlinkWriter, family: Family, table: String, chain: Chain, messageFlags: Int32, seq: UInt32) {
        let c = NftnlChain()
        nftnl_chain_set_str(c.pointer, NFTNL_CHAIN_TABLE.u16, table)
        nftnl_chain_set_str(c.pointer, NFTNL_CHAIN_NAME.u16, chain.name)
        if let base = chain.base {
            nftnl_chain_set_str(c.pointer, NFTNL_CHAIN_TYPE.u16, base.type.rawValue)
            nftnl_chain_set_u32(c.pointer, NFTNL_CHAIN_HOOKNUM.u16, base.hook.rawValue)
            nftnl_chain_set_s32(c.pointer, NFTNL_CHAIN_PRIO.u16, base.priority)
            nftnl_chain_set_u32(c.pointer, NFTNL_CHAIN_POLICY.u16, base.policy == .drop ? UInt32(NF_DROP) : UInt32(NF_ACCEPT))
            if let device = base.device { nftnl_chain_set_str(c.pointer, NFTNL_CHAIN_DEV.u16, device) }
        }
        if chain.flags != 0 {
            let base: UInt32 = chain.base == nil ? 0 : NFT_CHAIN_BASE.u32
            nftnl_chain_set_u32(c.pointer, NFTNL_CHAIN_FLAGS.u16, chain.flags | base)
        }
        if let userData = chain.userData {
            userData.withUnsafeBytes { _ = nftnl_chain_set_data(c.pointer, NFTNL_CHAIN_USERDATA.u16, $0.baseAddress, UInt32($0.count)) }
        }
        appendBuilt(to: &w, command: NFT_MSG_NEWCHAIN, family: family.rawValue, flags: messageFlags, seq: seq,
                    capacity: 256 + table.utf8.count + chain.name.utf8.count + (chain.userData?.count ?? 0)) {
            nftnl_chain_nlmsg_build_payload($0, c.pointer)
        }
    }
}

// MARK: Sets

/// Owns one `nftnl_set` (`nftnl_set_alloc` / `nftnl_set_free`).
struct NftnlSet: ~Copyable {
    private let pointer: OpaquePointer

    /// An empty set object.
    init() {
        guard let p = nftnl_set_alloc() else { fatalError("nftnl_set_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_set_free(pointer) }

    /// The set of an `NFT_MSG_NEWSET` message (`nftnl_set_nlmsg_parse`); nil if libnftnl cannot
    /// parse it.
    static func parse(_ m: NetlinkMessage) -> NftnlSet? {
        let s = NftnlSet()
        let ok = withParsableHeader(m, policy: AttributePolicy.set) { nftnl_set_nlmsg_parse($0, s.pointer) >= 0 } ?? false
        guard ok else { return nil }
        return .some(s)
    }

    private func has(_ attr: UInt16) -> Bool { nftnl_set_is_set(pointer, attr) }
    func str(_ attr: UInt16) -> String? { has(attr) ? cString(nftnl_set_get_str(pointer, attr)) : nil }
    func u32(_ attr: UInt16) -> UInt32? { has(attr) ? nftnl_set_get_u32(pointer, attr) : nil }
    func u64(_ attr: UInt16) -> UInt64? { has(attr) ? nftnl_set_get_u64(pointer, attr) : nil }
    func data(_ attr: UInt16) -> [UInt8]? {
        guard has(attr) else { return nil }
        var len: UInt32 = 0
        return bytes(nftnl_set_get_data(pointer, attr, &len), len)
    }

    /// Appends an `NFT_MSG_NEWSET` declaring `set` (no elements) to `w`
    /// (`nftnl_set_nlmsg_build_payload`), with batch id `id`.
    static func appendNew(to w: inout NetlinkWriter, family: Family, table: String, set: NamedSet, id: UInt32,
                          messageFlags: Int32, seq: UInt32) {
        let s = NftnlSet()
        let p = s.pointer
        let shape = SetShape(set)
        var flags = set.flags.rawValue
        if shape.usesKeyEnd { flags |= NFT_SET_CONCAT.u32 }
        nftnl_set_set_str(p, NFTNL_SET_TABLE.u16, table)
        nftnl_set_set_str(p, NFTNL_SET_NAME.u16, set.name)
        nftnl_set_set_u32(p, NFTNL_SET_FLAGS.u16, flags)
        nftnl_set_set_u32(p, NFTNL_SET_KEY_TYPE.u16,
                          shape.isConcatenation ? DataType.concatenationID(set.keyType) : set.keyType.first?.rawValue ?? 0)
        nftnl_set_set_u32(p, NFTNL_SET_KEY_LEN.u16, UInt32(shape.keyLength))
        if let data = set.dataType {
            nftnl_set_set_u32(p, NFTNL_SET_DATA_TYPE.u16, data == .verdict ? NFT_DATA_VERDICT.u32 : data.rawValue)
            nftnl_set_set_u32(p, NFTNL_SET_DATA_LEN.u16, data == .verdict ? 0 : UInt32(data.width))
        }
        nftnl_set_set_u32(p, NFTNL_SET_ID.u16, id)
        if set.policy != .performance { nftnl_set_set_u32(p, NFTNL_SET_POLICY.u16, set.policy.rawValue) }
        if let size = set.size { nftnl_set_set_u32(p, NFTNL_SET_DESC_SIZE.u16, size) }
        if shape.usesKeyEnd {
            // libnftnl counts the fields up to the first zero length.
            var fields = [UInt8](repeating: 0, count: 16)  // NFT_REG32_COUNT
            for (i, t) in set.keyType.prefix(fields.count - 1).enumerated() { fields[i] = UInt8(t.width) }
            fields.withUnsafeBytes { _ = nftnl_set_set_data(p, NFTNL_SET_DESC_CONCAT.u16, $0.baseAddress, UInt32($0.count)) }
        }
        if let timeout = set.timeout { nftnl_set_set_u64(p, NFTNL_SET_TIMEOUT.u16, timeout) }
        if let gc = set.gcInterval { nftnl_set_set_u32(p, NFTNL_SET_GC_INTERVAL.u16, gc) }
        let userData = set.userData ?? SetUserData.encode(set)
        if !userData.isEmpty {
            userData.withUnsafeBytes { _ = nftnl_set_set_data(p, NFTNL_SET_USERDATA.u16, $0.baseAddress, UInt32($0.count)) }
        }
        appendBuilt(to: &w, command: NFT_MSG_NEWSET, family: family.rawValue, flags: messageFlags, seq: seq,
                    capacity: 512 + table.utf8.count + set.name.utf8.count + userData.count) {
            nftnl_set_nlmsg_build_payload($0, p)
        }
    }
}

// MARK: Expressions and rules

/// Owns one `nftnl_expr` (`nftnl_expr_alloc` / `nftnl_expr_free`) until a rule takes it.
struct NftnlExpr: ~Copyable {
    fileprivate var pointer: OpaquePointer?

    /// An expression of kind `name` (`meta`, `payload`, `cmp`, …).
    init(_ name: String) {
        guard let p = nftnl_expr_alloc(name) else { fatalError("nftnl_expr_alloc(\(name)): unknown expression or out of memory") }
        pointer = p
    }

    deinit { if let pointer { nftnl_expr_free(pointer) } }

    mutating func set(_ attr: UInt16, u32 value: UInt32) { nftnl_expr_set_u32(pointer, attr, value) }
    mutating func set(_ attr: UInt16, u64 value: UInt64) { nftnl_expr_set_u64(pointer, attr, value) }
    mutating func set(_ attr: UInt16, u8 value: UInt8) { nftnl_expr_set_u8(pointer, attr, value) }
    mutating func set(_ attr: UInt16, u16 value: UInt16) { nftnl_expr_set_u16(pointer, attr, value) }
    mutating func set(_ attr: UInt16, string: String) { _ = nftnl_expr_set_str(pointer, attr, string) }
    mutating func set(_ attr: UInt16, bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = nftnl_expr_set(pointer, attr, $0.baseAddress, UInt32($0.count)) }
    }

    /// The expression as libnftnl builds it: one per kind of `KernelExpression`.
    init(_ e: KernelExpression) {
        switch e {
        case .meta(let key, let dreg):
            self.init("meta")
            set(UInt16(NFTNL_EXPR_META_KEY), u32: key)
            set(UInt16(NFTNL_EXPR_META_DREG), u32: dreg)
        case .payload(let base, let offset, let length, let dreg):
            self.init("payload")
            set(UInt16(NFTNL_EXPR_PAYLOAD_DREG), u32: dreg)
            set(UInt16(NFTNL_EXPR_PAYLOAD_BASE), u32: base)
            set(UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), u32: offset)
            set(UInt16(NFTNL_EXPR_PAYLOAD_LEN), u32: length)
        case .ct(let key, let dreg):
            self.init("ct")
            set(UInt16(NFTNL_EXPR_CT_KEY), u32: key)
            set(UInt16(NFTNL_EXPR_CT_DREG), u32: dreg)
        case .ctSet(let key, let sreg):
            self.init("ct")
            set(UInt16(NFTNL_EXPR_CT_KEY), u32: key)
            set(UInt16(NFTNL_EXPR_CT_SREG), u32: sreg)
        case .socket(let key, let level, let dreg):
            self.init("socket")
            set(UInt16(NFTNL_EXPR_SOCKET_KEY), u32: key)
            set(UInt16(NFTNL_EXPR_SOCKET_DREG), u32: dreg)
            if key == NFT_SOCKET_CGROUPV2.u32 { set(UInt16(NFTNL_EXPR_SOCKET_LEVEL), u32: level) }
        case .cmp(let op, let sreg, let data):
            self.init("cmp")
            set(UInt16(NFTNL_EXPR_CMP_SREG), u32: sreg)
            set(UInt16(NFTNL_EXPR_CMP_OP), u32: op)
            set(UInt16(NFTNL_EXPR_CMP_DATA), bytes: data)
        case .bitwise(let sreg, let dreg, let length, let mask, let xor):
            self.init("bitwise")
            set(UInt16(NFTNL_EXPR_BITWISE_SREG), u32: sreg)
            set(UInt16(NFTNL_EXPR_BITWISE_DREG), u32: dreg)
            set(UInt16(NFTNL_EXPR_BITWISE_LEN), u32: length)
            set(UInt16(NFTNL_EXPR_BITWISE_MASK), bytes: mask)
            set(UInt16(NFTNL_EXPR_BITWISE_XOR), bytes: xor)
        case .byteorder(let sreg, let dreg, let op, let length, let size):
            self.init("byteorder")
            set(UInt16(NFTNL_EXPR_BYTEORDER_SREG), u32: sreg)
            set(UInt16(NFTNL_EXPR_BYTEORDER_DREG), u32: dreg)
            set(UInt16(NFTNL_EXPR_BYTEORDER_OP), u32: op)
            set(UInt16(NFTNL_EXPR_BYTEORDER_LEN), u32: length)
            set(UInt16(NFTNL_EXPR_BYTEORDER_SIZE), u32: size)
        case .lookup(let sreg, let setName, let setID, let dreg, let inverted):
            self.init("lookup")
            set(UInt16(NFTNL_EXPR_LOOKUP_SREG), u32: sreg)
            if let dreg { set(UInt16(NFTNL_EXPR_LOOKUP_DREG), u32: dreg) }
            set(UInt16(NFTNL_EXPR_LOOKUP_SET), string: setName)
            if let setID { set(UInt16(NFTNL_EXPR_LOOKUP_SET_ID), u32: setID) }
            if inverted { set(UInt16(NFTNL_EXPR_LOOKUP_FLAGS), u32: NFT_LOOKUP_F_INV.u32) }
        case .immediate(let v):
            self.init("immediate")
            set(UInt16(NFTNL_EXPR_IMM_DREG), u32: NFT_REG_VERDICT.u32)
            set(UInt16(NFTNL_EXPR_IMM_VERDICT), u32: UInt32(bitPattern: KernelExpression.verdictCode(v)))
            switch v {
            case .jump(let c), .goto(let c): set(UInt16(NFTNL_EXPR_IMM_CHAIN), string: c)
            default: break
            }
        case .counter:
            self.init("counter")
        case .limit(let rate, let unit, let burst, let type, let flags):
            self.init("limit")
            set(UInt16(NFTNL_EXPR_LIMIT_RATE), u64: rate)
            set(UInt16(NFTNL_EXPR_LIMIT_UNIT), u64: unit)
            set(UInt16(NFTNL_EXPR_LIMIT_BURST), u32: burst)
            set(UInt16(NFTNL_EXPR_LIMIT_TYPE), u32: type)
            set(UInt16(NFTNL_EXPR_LIMIT_FLAGS), u32: flags)
        case .log(let prefix):
            self.init("log")
            set(UInt16(NFTNL_EXPR_LOG_PREFIX), string: prefix)
        case .nflog(let group, let prefix):
            self.init("log")
            set(UInt16(NFTNL_EXPR_LOG_PREFIX), string: prefix)
            set(UInt16(NFTNL_EXPR_LOG_GROUP), u16: group)
        case .reject(let type, let code):
            self.init("reject")
            set(UInt16(NFTNL_EXPR_REJECT_TYPE), u32: type)
            set(UInt16(NFTNL_EXPR_REJECT_CODE), u8: code)
        case .unknown(let what):
            preconditionFailure("cannot encode unknown expression \(what)")
        }
    }

    /// Gives the object up to its new owner; the wrapper then frees nothing.
    fileprivate consuming func release() -> OpaquePointer {
        let p = pointer!
        pointer = nil
        return p
    }
}

/// Owns one `nftnl_rule` (`nftnl_rule_alloc` / `nftnl_rule_free`), and through it its expressions.
struct NftnlRule: ~Copyable {
    private let pointer: OpaquePointer

    /// An empty rule of `chain` in `table`.
    init(table: String, chain: String) {
        guard let p = nftnl_rule_alloc() else { fatalError("nftnl_rule_alloc: out of memory") }
        pointer = p
        nftnl_rule_set_str(p, NFTNL_RULE_TABLE.u16, table)
        nftnl_rule_set_str(p, NFTNL_RULE_CHAIN.u16, chain)
    }

    deinit { nftnl_rule_free(pointer) }

    /// Appends `expr` (`nftnl_rule_add_expr`): the rule owns and frees it from now on.
    func add(_ expr: consuming NftnlExpr) {
        nftnl_rule_add_expr(pointer, expr.release())
    }

    /// Sets `NFTNL_RULE_USERDATA`.
    func setUserData(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = nftnl_rule_set_data(pointer, NFTNL_RULE_USERDATA.u16, $0.baseAddress, UInt32($0.count)) }
    }

    /// Appends an `NFT_MSG_NEWRULE` for this rule to `w` (`nftnl_rule_nlmsg_build_payload`).
    func append(to w: inout NetlinkWriter, family: Family, messageFlags: Int32, seq: UInt32, capacity: Int) {
        appendBuilt(to: &w, command: NFT_MSG_NEWRULE, family: family.rawValue, flags: messageFlags, seq: seq,
                    capacity: capacity) { nftnl_rule_nlmsg_build_payload($0, pointer) }
    }
}

// MARK: Set elements

/// Owns one `nftnl_set_elem` (`nftnl_set_elem_alloc` / `nftnl_set_elem_free`).
struct NftnlSetElem: ~Copyable {
    private let pointer: OpaquePointer

    init() {
        guard let p = nftnl_set_elem_alloc() else { fatalError("nftnl_set_elem_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_set_elem_free(pointer) }

    func set(_ attr: UInt16, bytes: UnsafeRawBufferPointer) {
        _ = nftnl_set_elem_set(pointer, attr, bytes.baseAddress, UInt32(bytes.count))
    }

    func set(_ attr: UInt16, u32 value: UInt32) { nftnl_set_elem_set_u32(pointer, attr, value) }
    func set(_ attr: UInt16, string: String) { _ = nftnl_set_elem_set_str(pointer, attr, string) }

    /// The element as libnftnl builds it (`nftnl_set_elem_nlmsg_build`): one
    /// `NFTA_LIST_ELEM`-style nest numbered `index`, appended to the message `nlh`.
    func build(into nlh: UnsafeMutablePointer<nlmsghdr>, index: Int) {
        _ = nftnl_set_elem_nlmsg_build(nlh, pointer, Int32(index))
    }

    /// nft's element user data for an interval that runs to the largest value
    /// (`NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`), built with `nftnl_udata`.
    func setOpenIntervalFlag() {
        guard let buf = nftnl_udata_buf_alloc(16) else { fatalError("nftnl_udata_buf_alloc: out of memory") }
        defer { nftnl_udata_buf_free(buf) }
        _ = nftnl_udata_put_u32(buf, UInt8(NFTNL_UDATA_SET_ELEM_FLAGS.rawValue), UInt32(NFTNL_SET_ELEM_F_INTERVAL_OPEN.rawValue))
        set(UInt16(NFTNL_SET_ELEM_USERDATA),
            bytes: UnsafeRawBufferPointer(start: nftnl_udata_buf_data(buf), count: Int(nftnl_udata_buf_len(buf))))
    }
}
