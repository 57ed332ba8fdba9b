import CNetfilter
import Glibc
import Ruleset

// Entry points for the fuzz targets (scripts/fuzz): the decoders `NetlinkKernel` runs on what
// the kernel sends, fed arbitrary bytes. They must never trap: what cannot be decoded is a
// thrown `NetfilterError` naming it, or (as in a real dump) drift in the decoded table.

/// Splits `bytes` into netlink messages; throws naming the offset where a message is cut short.
private func messages(_ bytes: [UInt8], what: String) throws(NetfilterError) -> [NetlinkMessage] {
    let all = NetlinkMessage.split(bytes[...])
    var end = 0
    for m in all { end = (m.payload.endIndex + 3) & ~3 }
    if min(end, bytes.count) != bytes.count {
        throw NetfilterError(operation: "decoding \(what)", errno: EBADMSG,
                             detail: "truncated or malformed netlink message at byte \(end) of \(bytes.count)")
    }
    return all
}

/// Decodes a table as a dump returns it: the concatenated reply messages of `NFT_MSG_GETTABLE`,
/// `GETCHAIN`, `GETSET`, `GETSETELEM` and `GETRULE` (in any order; elements after their set).
/// Nil when the bytes hold no table message. Rules zonewall cannot express become drift
/// markers, as in `NetlinkKernel.dump`.
public func decodeTableDump(_ bytes: [UInt8]) throws -> Table? {
    let all = try messages(bytes, what: "a table dump")
    // A kernel error reply (NLMSG_ERROR with a non-zero code) is a failed dump, not an empty one.
    for m in all where m.type == UInt16(NLMSG_ERROR) {
        let p = m.payload
        let code = p.count >= 4 ? Int32(bitPattern: UInt32(p[p.startIndex]) | UInt32(p[p.startIndex + 1]) << 8
                                                   | UInt32(p[p.startIndex + 2]) << 16 | UInt32(p[p.startIndex + 3]) << 24) : 0
        if code != 0 {
            throw NetfilterError(operation: "decoding a table dump", errno: code < 0 && code != Int32.min ? -code : EBADMSG,
                                 detail: "the dump holds a netlink error reply")
        }
    }
    let nftables = all.filter { $0.type >> 8 == UInt16(NFNL_SUBSYS_NFTABLES) && $0.payload.count >= 4 }
    guard let tableMessage = nftables.first(where: { $0.type & 0xff == NFT_MSG_NEWTABLE.u16 }),
          let name = NftnlTable.parse(tableMessage)?.name ?? tableMessage.attributes[NFTA_TABLE_NAME.u16]?.string else { return nil }
    let family = Family(rawValue: tableMessage.payload[tableMessage.payload.startIndex])
    let decoder = TableDecoder(family: family, strict: false)
    var table = Table(family: family, name: name)
    if let attributes = decoder.tableAttributes(tableMessage, table: name) { (table.flags, table.userData) = attributes }

    var shapes: [String: SetShape] = [:]
    var collectors: [String: ElementCollector] = [:]
    var keyless: Set<String> = []
    var rules: [(String, Rule)] = []
    for m in nftables {
        switch UInt32(m.type & 0xff) {
        case NFT_MSG_NEWCHAIN.u32:
            if let chain = decoder.chain(m, table: name), table.chain(named: chain.name) == nil { table.chains.append(chain) }
        case NFT_MSG_NEWSET.u32:
            if let (set, shape) = decoder.set(m, table: name), shapes[set.name] == nil {
                table.sets.append(set)
                shapes[set.name] = shape
                collectors[set.name] = ElementCollector(shape: shape)
            }
        case NFT_MSG_NEWSETELEM.u32:
            let a = m.attributes
            guard a[NFTA_SET_ELEM_LIST_TABLE.u16]?.string == name, let set = a[NFTA_SET_ELEM_LIST_SET.u16]?.string else { continue }
            guard let shape = shapes[set] else {
                throw NetfilterError(operation: "decoding elements of set \(set) of table \(family) \(name)", errno: EBADMSG,
                                     detail: "no such set precedes them in the dump")
            }
            var collector = collectors[set]!
            if collector.add(elementsOf: m, decoder) > 0 { keyless.insert(set) }
            // The other element decoder sees every message too: the fast path is the default,
            // libnftnl's is kept behind the same interface (`ZONEWALL_ELEMENT_PATH`).
            var other = decoder
            other.elementPath = decoder.elementPath == .direct ? .libnftnl : .direct
            other.kernelElements(m, shape: shape) { _ in }
            collectors[set] = collector
        case NFT_MSG_NEWRULE.u32:
            if let rule = try decoder.rule(m, table: name) { rules.append(rule) }
        default:
            continue
        }
    }
    for i in table.sets.indices {
        let set = table.sets[i]
        if keyless.contains(set.name) {
            table.sets[i] = NamedSet(name: set.name, keyType: [.unknownWidth], dataType: set.dataType, flags: set.flags)
        } else if var collector = collectors[set.name] {
            table.sets[i].elements = collector.finish()
        }
    }
    var index: [String: Int] = [:]
    for (i, chain) in table.chains.enumerated() { index[chain.name] = i }
    for (chain, rule) in rules {
        guard let i = index[chain] else {
            throw NetfilterError(operation: "decoding a rule of chain \(chain) of table \(family) \(name)", errno: EBADMSG,
                                 detail: "no such chain in the dump")
        }
        table.chains[i].rules.append(rule)
    }
    return table
}

/// Decodes nftables change notifications (the messages of `NFNLGRP_NFTABLES`, concatenated)
/// into the events `NetlinkKernel.events` reports for table `inet zonewall`: one per
/// `NFT_MSG_NEWGEN`. The pid is the kernel's `NFTA_GEN_PROC_PID` as it stands (the live
/// reader maps this process's own commits to its pid).
public func decodeChangeNotifications(_ bytes: [UInt8]) throws -> [KernelEvent] {
    var decoder = ChangeNotificationDecoder(family: .inet, table: "zonewall")
    var events: [KernelEvent] = []
    for m in try messages(bytes, what: "change notifications") {
        guard let c = decoder.consume(m) else { continue }
        events.append(.changed(generation: c.generation, pid: c.threadID, processName: c.processName,
                               touchedTable: c.touchedTable, onlyElementsOf: c.onlyElementsOf))
    }
    return events
}
