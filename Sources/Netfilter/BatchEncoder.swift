import CNetfilter
import Ruleset

/// What one message of a batch does, kept to name the object when the kernel rejects it.
enum BatchOperation: Sendable {
    case begin(generation: UInt32?)
    case end
    case addTable
    case deleteTable
    case addSet(NamedSet)
    case addChain(String)
    case addRule(chain: String, number: Int, Rule)
    case elements(ElementChunk)
}

/// One element message: a slice of a transaction's element list for one set.
struct ElementChunk: Sendable {
    var set: String
    var shape: SetShape
    var adding: Bool
    var firstSegment: Bool
    /// The whole list of the change (shared, not copied) and which kernel elements this message holds.
    var elements: ElementList
    var parts: Range<Int>
}

/// A transaction encoded as one nfnetlink batch (`NFNL_MSG_BATCH_BEGIN` … `END`).
struct EncodedBatch: Sendable {
    /// The messages, in libmnl batch pages.
    var pages: BatchPages
    var firstSeq: UInt32
    /// Indexed by `seq - firstSeq`.
    var operations: [BatchOperation]
    /// Where each message starts in `bytes`, indexed like `operations`.
    var offsets: [Int]
    var family: Family
    var table: String

    /// The batch's bytes, pages joined: what the kernel receives (for tests and error reports).
    var bytes: [UInt8] { pages.bytes }

    /// The batch's size in bytes.
    var byteCount: Int { pages.byteCount }

    /// Messages the kernel acknowledges: all but batch begin and end.
    var acknowledgedCount: Int { operations.count - 2 }

    func index(of seq: UInt32) -> Int? {
        let i = Int(seq &- firstSeq)
        return i >= 0 && i < operations.count ? i : nil
    }
}

/// Encodes a `Transaction` as the batch nft 1.0.6 would send for its `nftText`, message by
/// message (see `RuleLowering` and `SetElementCodec` for rules and elements), with two
/// deliberate differences: every message asks for an ack (`NLM_F_ACK`), and sets and chains
/// are created with `NLM_F_EXCL`, so an existing one is an error. Elements are added as
/// `nft add element` adds them (no `NLM_F_EXCL`): a conflicting element still fails.
struct BatchEncoder {
    /// Element nests carry 16-bit lengths; leave room for the largest single element.
    static let elementBytesPerMessage = 65535 - 1024

    var family: Family
    var table: String
    /// Declarations of sets the transaction adds elements to without declaring them.
    var knownSets: [String: NamedSet]
    /// How set elements are encoded: by libnftnl (the default), or by the hand-written fast
    /// path, which writes the same bytes (`SetElementCodecTests` checks both against each other).
    var elementPath: ElementPath = .libnftnl
    /// The size of the batch's pages (`BatchPages`); tests make it small to split a batch.
    var pageSize = BatchPages.defaultPageSize

    enum ElementPath: String, Sendable, CaseIterable {
        /// `nftnl_set_elem` objects, built with `nftnl_set_elem_nlmsg_build`.
        case libnftnl
        /// `putElement`: written straight into the batch, no allocation per element.
        case direct
    }

    func encode(_ tx: Transaction, generation: UInt32?, commit: Bool, firstSeq: UInt32) -> EncodedBatch {
        // Each message is written to `w`, then moved to the pages when the next one starts.
        let pages = BatchPages(pageSize: pageSize, expectedBytes: Self.estimatedSize(tx))
        var w = NetlinkWriter(capacity: BatchPages.largestMessage)
        func flush() {
            guard w.count > 0 else { return }
            w.bytes.withUnsafeBytes { pages.append($0) }
            w.reset()
        }
        var ops: [BatchOperation] = []
        var offsets: [Int] = []
        var seq = firstSeq
        var setIDs: [String: UInt32] = [:]
        var declared = knownSets
        var ruleNumbers: [String: Int] = [:]
        var scratch: [UInt8] = []
        let fam = tx.family.rawValue

        func begin(_ op: BatchOperation, _ msg: UInt32, flags: Int32) -> Int {
            flush()
            ops.append(op)
            offsets.append(pages.byteCount)
            defer { seq &+= 1 }
            let type = UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(msg)
            return w.beginMessage(type: type, flags: UInt16(NLM_F_REQUEST | NLM_F_ACK | flags), seq: seq, family: fam)
        }

        // Batch begin: addressed to the nftables subsystem, optionally pinned to a generation.
        ops.append(.begin(generation: generation))
        offsets.append(pages.byteCount)
        appendBatchBegin(to: &w, seq: seq, generation: generation)
        seq &+= 1
        var m = 0

        /// Records a message libnftnl builds; returns its sequence number.
        func record(_ op: BatchOperation) -> UInt32 {
            flush()
            ops.append(op)
            offsets.append(pages.byteCount)
            defer { seq &+= 1 }
            return seq
        }

        for (index, change) in tx.changes.enumerated() {
            switch change {
            case .addTable:
                let ensureOnly = tx.onlyEnsuresTable(at: index)
                NftnlTable.appendNew(to: &w, family: tx.family, name: tx.table, flags: ensureOnly ? nil : tx.tableFlags,
                                     userData: ensureOnly ? nil : tx.tableUserData,
                                     messageFlags: NLM_F_ACK | NLM_F_CREATE, seq: record(.addTable))
            case .deleteTable:
                NftnlTable.appendDelete(to: &w, family: tx.family, name: tx.table, messageFlags: NLM_F_ACK, seq: record(.deleteTable))
                declared = [:]
            case .addChain(let chain):
                NftnlChain.appendNew(to: &w, family: tx.family, table: tx.table, chain: chain,
                                     messageFlags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq: record(.addChain(chain.name)))
            case .addSet(let set):
                let id = UInt32(setIDs.count + 1)
                setIDs[set.name] = id
                declared[set.name] = set
                NftnlSet.appendNew(to: &w, family: tx.family, table: tx.table, set: set, id: id,
                                   messageFlags: NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq: record(.addSet(set)))
            case .addRule(let chain, let rule):
                let number = ruleNumbers[chain, default: 0] + 1
                ruleNumbers[chain] = number
                let r = NftnlRule(table: tx.table, chain: chain)
                let lowered = RuleLowering(family: tx.family, setIDs: setIDs).lower(rule.expressions)
                for e in lowered { r.add(NftnlExpr(e)) }
                let userData = rule.userData ?? RuleUserData.encode(comment: rule.comment) ?? []
                if !userData.isEmpty { r.setUserData(userData) }
                r.append(to: &w, family: tx.family, messageFlags: NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
                         seq: record(.addRule(chain: chain, number: number, rule)),
                         capacity: 1024 + tx.table.utf8.count + chain.utf8.count + lowered.count * 512 + userData.count)
            case .addElements(let name, let elements), .deleteElements(let name, let elements):
                guard !elements.isEmpty else { continue }
                let adding = if case .addElements = change { true } else { false }
                let set = declared[name] ?? NamedSet(name: name, keyType: Self.guessTypes(elements[0]),
                                                      dataType: elements[0].data.map { _ in .verdict })
                let shape = SetShape(set)
                // nft's "first segment": only when filling a set created in this batch.
                let firstSegment = adding && setIDs[name] != nil
                let msgType = adding ? NFT_MSG_NEWSETELEM.u32 : NFT_MSG_DELSETELEM.u32
                // Like `nft add element`: NLM_F_CREATE without NLM_F_EXCL. With EXCL the kernel
                // announces "create element", which nft 1.0.6's monitor mis-parses for interval
                // and concatenated sets (garbage, then a crash). A conflicting element still fails.
                let flags = adding ? NLM_F_CREATE : 0
                var partIndex = 0, chunkStart = 0
                var nest = 0
                func open() {
                    chunkStart = partIndex
                    m = begin(.elements(ElementChunk(set: name, shape: shape, adding: adding, firstSegment: firstSegment,
                                                     elements: elements, parts: partIndex..<partIndex)), msgType, flags: flags)
                    w.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: tx.table)
                    if let id = setIDs[name] {
                        // A set created in this batch is named by its batch id alone: the kernel
                        // then finds it among the batch's newest transactions, instead of walking
                        // every set of the table by name (quadratic with 10,000s of sets).
                        w.put(NFTA_SET_ELEM_LIST_SET_ID.u16, u32: id)
                    } else {
                        w.put(NFTA_SET_ELEM_LIST_SET.u16, string: name)
                    }
                    nest = w.beginNest(NFTA_SET_ELEM_LIST_ELEMENTS.u16)
                }
                func close() {
                    w.endNest(nest)
                    w.endMessage(m)
                    if case .elements(var chunk) = ops[ops.count - 1] {
                        chunk.parts = chunkStart..<partIndex
                        ops[ops.count - 1] = .elements(chunk)
                    }
                }
                open()
                var dataNests = DataNests()
                if elementPath == .direct, let layout = RawLayout(shape),
                   SetElementCodec.forEachRawPart(of: elements, shape: shape, layout: layout, adding: adding, firstSegment: firstSegment, { part in
                       if w.length(since: nest) > Self.elementBytesPerMessage {
                           close()
                           open()
                       }
                       let e = w.beginNest(UInt16(truncatingIfNeeded: partIndex - chunkStart + 1) & 0x3fff)
                       Self.putElement(part, layout: layout, shape: shape, adding: adding, dataNests: &dataNests, &w)
                       w.endNest(e)
                       partIndex += 1
                   }) {
                    close()
                    continue
                }
                SetElementCodec.forEachPart(of: elements, shape: shape, adding: adding, firstSegment: firstSegment) { part in
                    if w.length(since: nest) > Self.elementBytesPerMessage {
                        close()
                        open()
                    }
                    // nft numbers the element nests 1, 2, 3… within each message.
                    let number = partIndex - chunkStart + 1
                    switch elementPath {
                    case .libnftnl:
                        Self.appendElement(part, shape: shape, adding: adding, number: number, toMessageAt: m, &w, scratch: &scratch)
                    case .direct:
                        let e = w.beginNest(UInt16(truncatingIfNeeded: number) & 0x3fff)
                        Self.putElement(part, shape: shape, adding: adding, &w)
                        w.endNest(e)
                    }
                    partIndex += 1
                }
                close()
            }
        }

        flush()
        ops.append(.end)
        offsets.append(pages.byteCount)
        // Without a batch end (`nft -c`) the kernel validates every message, then aborts.
        if commit {
            appendBatchEnd(to: &w, seq: seq)
            flush()
        }
        return EncodedBatch(pages: pages, firstSeq: firstSeq, operations: ops, offsets: offsets,
                            family: tx.family, table: tx.table)
    }

    // MARK: Objects

    /// The element as libnftnl builds it: an `nftnl_set_elem` with the same attributes
    /// `putElement` writes, appended to the message at `m` by `nftnl_set_elem_nlmsg_build`.
    static func appendElement(_ part: SetElementCodec.Part, shape: SetShape, adding: Bool, number: Int,
                              toMessageAt m: Int, _ w: inout NetlinkWriter, scratch: inout [UInt8]) {
        let e = part.element
        let elem = NftnlSetElem()
        func key(_ attr: UInt16, _ value: (Int) -> Value) {
            scratch.removeAll(keepingCapacity: true)
            for (i, t) in shape.keyType.enumerated() {
                SetElementCodec.appendBytes(Value(value(i).uint128, width: t.width), bigEndian: t.isBigEndian, to: &scratch)
                if shape.isConcatenation { scratch.append(contentsOf: repeatElement(0, count: t.paddedWidth - t.width)) }
            }
            scratch.withUnsafeBytes { elem.set(attr, bytes: $0) }
        }
        var chainLength = 0
        switch part.kind {
        case .zeroEnd:
            elem.set(UInt16(NFTNL_SET_ELEM_FLAGS), u32: NFT_SET_ELEM_INTERVAL_END.u32)
            key(UInt16(NFTNL_SET_ELEM_KEY)) { _ in Value(high: 0, low: 0, width: e.key[0].lo.width) }
        case .end:
            elem.set(UInt16(NFTNL_SET_ELEM_FLAGS), u32: NFT_SET_ELEM_INTERVAL_END.u32)
            key(UInt16(NFTNL_SET_ELEM_KEY)) { _ in e.key[0].hi.successor! }
        case .start, .whole:
            key(UInt16(NFTNL_SET_ELEM_KEY)) { e.key[$0].lo }
            if shape.usesKeyEnd { key(UInt16(NFTNL_SET_ELEM_KEY_END)) { e.key[$0].hi } }
            if adding, let data = e.data {
                switch data {
                case .verdict(let v):
                    elem.set(UInt16(NFTNL_SET_ELEM_VERDICT), u32: UInt32(bitPattern: KernelExpression.verdictCode(v)))
                    switch v {
                    case .jump(let c), .goto(let c):
                        elem.set(UInt16(NFTNL_SET_ELEM_CHAIN), string: c)
                        chainLength = c.utf8.count
                    default: break
                    }
                case .value(let v):
                    let t = shape.dataType ?? .integer
                    scratch.removeAll(keepingCapacity: true)
                    SetElementCodec.appendBytes(Value(v.uint128, width: t.width), bigEndian: t.isBigEndian, to: &scratch)
                    scratch.withUnsafeBytes { elem.set(UInt16(NFTNL_SET_ELEM_DATA), bytes: $0) }
                }
            }
            if adding, part.kind == .start, e.key[0].hi == .max(width: e.key[0].hi.width) { elem.setOpenIntervalFlag() }
        }
        // Nest, flags, key and key end, data or verdict with its chain, user data.
        let room = 96 + 2 * shape.keyLength + 32 + chainLength
        w.appendInPlace(toMessageAt: m, room: room) { elem.build(into: $0, index: number) }
    }

    static func putElement(_ part: SetElementCodec.Part, shape: SetShape, adding: Bool, _ w: inout NetlinkWriter) {
        let e = part.element
        func key(_ type: UInt16, _ value: (Int) -> Value) {
            let n = w.beginNest(type)
            w.put(NFTA_DATA_VALUE.u16) { w in
                for (i, t) in shape.keyType.enumerated() {
                    let v = value(i)
                    w.append(Value(v.uint128, width: t.width), bigEndian: t.isBigEndian)
                    if shape.isConcatenation { w.zeros(t.paddedWidth - t.width) }
                }
            }
            w.endNest(n)
        }
        switch part.kind {
        case .zeroEnd:
            w.put(NFTA_SET_ELEM_FLAGS.u16, u32: NFT_SET_ELEM_INTERVAL_END.u32)
            key(NFTA_SET_ELEM_KEY.u16) { _ in Value(high: 0, low: 0, width: e.key[0].lo.width) }
        case .end:
            w.put(NFTA_SET_ELEM_FLAGS.u16, u32: NFT_SET_ELEM_INTERVAL_END.u32)
            key(NFTA_SET_ELEM_KEY.u16) { _ in e.key[0].hi.successor! }
        case .start, .whole:
            key(NFTA_SET_ELEM_KEY.u16) { e.key[$0].lo }
            if shape.usesKeyEnd { key(NFTA_SET_ELEM_KEY_END.u16) { e.key[$0].hi } }
            if adding, let data = e.data { putData(data, shape: shape, &w) }
            if adding, part.kind == .start, e.key[0].hi == .max(width: e.key[0].hi.width) { putOpenInterval(&w) }
        }
    }

    /// An element's `NFTA_SET_ELEM_DATA`: a verdict, or a value of the set's data type.
    static func putData(_ data: ElementData, shape: SetShape, _ w: inout NetlinkWriter) {
        let n = w.beginNest(NFTA_SET_ELEM_DATA.u16)
        switch data {
        case .verdict(let v): KernelExpression.putVerdict(v, &w)
        case .value(let v):
            let t = shape.dataType ?? .integer
            w.put(NFTA_DATA_VALUE.u16) { $0.append(Value(v.uint128, width: t.width), bigEndian: t.isBigEndian) }
        }
        w.endNest(n)
    }

    /// nft's flag for a range that runs to the largest value (nftnl udata:
    /// `NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`).
    static func putOpenInterval(_ w: inout NetlinkWriter) {
        w.put(NFTA_SET_ELEM_USERDATA.u16) {
            $0.bytes8(UInt8(NFTNL_UDATA_SET_ELEM_FLAGS.rawValue), 4)
            $0.appendHost(UInt32(NFTNL_SET_ELEM_F_INTERVAL_OPEN.rawValue))
        }
    }

    /// The `NFTA_SET_ELEM_DATA` attributes of one element list, by data slot: a map's elements
    /// share a few data (a zone's addresses all jump to its chain), each is encoded once and
    /// copied after. An attribute is a whole number of 4-byte units, so its bytes do not depend
    /// on where it is written.
    struct DataNests {
        private var bySlot: [[UInt8]] = []

        mutating func put(_ data: ElementData, slot: Int, shape: SetShape, _ w: inout NetlinkWriter) {
            guard slot >= 0 else { return BatchEncoder.putData(data, shape: shape, &w) }
            if slot < bySlot.count, !bySlot[slot].isEmpty {
                w.append(bySlot[slot])
                return
            }
            let start = w.count
            BatchEncoder.putData(data, shape: shape, &w)
            if slot >= bySlot.count { bySlot.append(contentsOf: repeatElement([], count: slot - bySlot.count + 1)) }
            bySlot[slot] = w.bytes(since: start)
        }
    }

    /// `putElement` from the element's bytes (`SetElementCodec.forEachRawPart`): the same
    /// attributes, byte for byte.
    static func putElement(_ part: SetElementCodec.RawPart, layout: RawLayout, shape: SetShape, adding: Bool, _ w: inout NetlinkWriter) {
        var nests = DataNests()
        putElement(part, layout: layout, shape: shape, adding: adding, dataNests: &nests, &w)
    }

    static func putElement(_ part: SetElementCodec.RawPart, layout: RawLayout, shape: SetShape, adding: Bool,
                           dataNests: inout DataNests, _ w: inout NetlinkWriter) {
        let first = layout.widths[0]
        func key(_ type: UInt16, highEnds: Bool) {
            let n = w.beginNest(type)
            w.put(NFTA_DATA_VALUE.u16) { w in
                var offset = 0
                for (width, t) in zip(layout.widths, shape.keyType) {
                    w.append(part.bytes + offset + (highEnds ? width : 0), count: width)
                    if shape.isConcatenation { w.zeros(t.paddedWidth - width) }
                    offset += 2 * width
                }
            }
            w.endNest(n)
        }
        switch part.kind {
        case .zeroEnd:
            w.put(NFTA_SET_ELEM_FLAGS.u16, u32: NFT_SET_ELEM_INTERVAL_END.u32)
            let n = w.beginNest(NFTA_SET_ELEM_KEY.u16)
            w.put(NFTA_DATA_VALUE.u16) { $0.zeros(first) }
            w.endNest(n)
        case .end:
            // The high end plus one, in network order (the caller skips a high end of all ones).
            w.put(NFTA_SET_ELEM_FLAGS.u16, u32: NFT_SET_ELEM_INTERVAL_END.u32)
            let n = w.beginNest(NFTA_SET_ELEM_KEY.u16)
            w.put(NFTA_DATA_VALUE.u16) { $0.appendSuccessor(part.bytes + first, count: first) }
            w.endNest(n)
        case .start, .whole:
            key(NFTA_SET_ELEM_KEY.u16, highEnds: false)
            if shape.usesKeyEnd { key(NFTA_SET_ELEM_KEY_END.u16, highEnds: true) }
            if adding, let data = part.data { dataNests.put(data, slot: part.dataSlot, shape: shape, &w) }
            if adding, part.kind == .start, UnsafeBufferPointer(start: part.bytes + first, count: first).allSatisfy({ $0 == 0xff }) {
                putOpenInterval(&w)
            }
        }
    }

    /// Key types for a set the transaction does not declare and the kernel did not report:
    /// inferred from the widths (addresses, protocol, port).
    static func guessTypes(_ e: SetElement) -> [DataType] {
        e.key.map {
            switch $0.lo.width {
            case 16: .ipv6Address
            case 1: .inetProtocol
            case 2: .inetService
            default: .ipv4Address
            }
        }
    }

    static func estimatedSize(_ tx: Transaction) -> Int {
        tx.changes.reduce(4096) {
            switch $1 {
            // Generous on purpose: pages of the reservation that are never written are never
            // resident, while growing a 50 MB buffer by doubling would copy it and hold both.
            case .addElements(_, let e), .deleteElements(_, let e): $0 + e.count * 256
            case .addRule(_, let r): $0 + 128 + r.expressions.count * 96
            default: $0 + 256
            }
        }
    }
}

extension NetlinkWriter {
    /// Two raw bytes (an nftnl udata type and length).
    mutating func bytes8(_ a: UInt8, _ b: UInt8) {
        appendHost(a)
        appendHost(b)
    }

    mutating func raw(_ data: [UInt8]) {
        for b in data { appendHost(b) }
    }
}
