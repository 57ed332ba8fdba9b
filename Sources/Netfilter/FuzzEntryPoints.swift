import CNetfilter
import Ruleset

// The decoders' entry points for fuzzing (`scripts/fuzz`) and for decoder tests: kernel
// messages are input too, and arbitrary bytes must give a value or a typed error, never a trap.

/// Bytes that `decodeTableDump` or `decodeChangeNotifications` could not decode.
public struct NetlinkDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What could not be decoded, e.g. `truncated netlink message header`.
    public var what: String
    /// Offset of the message concerned in the input.
    public var offset: Int

    public var description: String { "cannot decode netlink input at byte \(offset): \(what)" }
}

/// The table described by a concatenation of netlink messages, as a dump of one table returns
/// them: `NFT_MSG_NEWTABLE`, `NEWCHAIN`, `NEWSET`, `NEWSETELEM` and `NEWRULE` messages, in any
/// order, `NLMSG_DONE` ignored. Nil when no table message is present; objects of other tables
/// are skipped, as a dump skips them. A rule zonewall cannot express becomes a marker rule,
/// as `NetlinkKernel.dump` makes it. Never traps.
public func decodeTableDump(_ bytes: [UInt8]) throws -> Table? {
    let messages = try splitForDecoding(bytes)
    var table: Table?
    for (_, m) in messages where m.type & 0xff == NFT_MSG_NEWTABLE.u16 && table == nil {
        table = Table(family: Family(rawValue: m.payload.first ?? 0), name: m.attributes[NFTA_TABLE_NAME.u16]?.string ?? "")
    }
    guard var table else { return nil }
    let decoder = TableDecoder(family: table.family, strict: false)
    var declarations: [(NamedSet, SetShape)] = []
    var collectors: [String: (Int, ElementCollector)] = [:]
    var rules: [(String, Rule)] = []
    for (offset, m) in messages {
        switch m.type & 0xff {
        case NFT_MSG_NEWCHAIN.u16:
            if let chain = decoder.chain(m, table: table.name) { table.chains.append(chain) }
        case NFT_MSG_NEWSET.u16:
            guard let (set, shape) = decoder.set(m, table: table.name) else { continue }
            guard collectors[set.name] == nil else {
                throw NetlinkDecodeError(what: "set \(set.name) is declared twice", offset: offset)
            }
            collectors[set.name] = (declarations.count, ElementCollector(shape: shape))
            declarations.append((set, shape))
        case NFT_MSG_NEWRULE.u16:
            if let (chain, rule) = try decoder.rule(m, table: table.name) { rules.append((chain, rule)) }
        default: break
        }
    }
    // Elements after every declaration: a dump reads the sets first.
    for (offset, m) in messages where m.type & 0xff == NFT_MSG_NEWSETELEM.u16 {
        let a = m.attributes
        guard a[NFTA_SET_ELEM_LIST_TABLE.u16]?.string == table.name else { continue }
        let name = a[NFTA_SET_ELEM_LIST_SET.u16]?.string ?? ""
        guard let (index, declared) = collectors[name] else {
            throw NetlinkDecodeError(what: "elements of set '\(name)', which is not declared", offset: offset)
        }
        var collector = declared
        let keyless = decoder.kernelElements(m, shape: collector.shape) { collector.add($0) }
        if keyless > 0 {
            throw NetlinkDecodeError(what: "\(keyless) element(s) of set \(name) without a key", offset: offset)
        }
        collectors[name] = (index, collector)
    }
    table.sets = declarations.map { set, _ in
        var s = set
        if var collector = collectors[set.name]?.1 { s.elements = collector.finish() }
        return s
    }
    var index: [String: Int] = [:]
    for (i, chain) in table.chains.enumerated() where index[chain.name] == nil { index[chain.name] = i }
    for (chain, rule) in rules {
        guard let i = index[chain] else { continue }
        table.chains[i].rules.append(rule)
    }
    return table
}

/// The events a subscriber to `NFNLGRP_NFTABLES` would see for a concatenation of
/// notification messages, watching `table inet zonewall`. The pid is the committing thread's
/// id as the kernel reports it (no /proc lookup). Never traps.
public func decodeChangeNotifications(_ bytes: [UInt8]) throws -> [KernelEvent] {
    var decoder = ChangeNotificationDecoder(family: .inet, table: "zonewall")
    var events: [KernelEvent] = []
    for (_, m) in try splitForDecoding(bytes) {
        guard let c = decoder.consume(m) else { continue }
        events.append(.changed(generation: c.generation, pid: c.threadID, processName: c.processName,
                               touchedTable: c.touchedTable, onlyElementsOf: c.onlyElementsOf))
    }
    return events
}

/// The messages of `bytes` with their offsets; throws at the first one that is truncated,
/// is a netlink error, or lacks the `nfgenmsg` header an nftables message has.
func splitForDecoding(_ bytes: [UInt8]) throws(NetlinkDecodeError) -> [(Int, NetlinkMessage)] {
    var out: [(Int, NetlinkMessage)] = []
    var i = 0
    while i < bytes.count {
        guard bytes.count - i >= 16 else { throw NetlinkDecodeError(what: "truncated netlink message header", offset: i) }
        let length = Int(readHost(UInt32.self, bytes[...], i))
        guard length >= 16, length <= bytes.count - i else {
            throw NetlinkDecodeError(what: "netlink message length \(length) outside the \(bytes.count - i) bytes left", offset: i)
        }
        guard let m = NetlinkMessage.split(bytes[i..<(i + length)]).first else {
            throw NetlinkDecodeError(what: "undecodable netlink message", offset: i)
        }
        switch m.type {
        case UInt16(NLMSG_DONE), UInt16(NLMSG_NOOP): break
        case UInt16(NLMSG_ERROR):
            let errno = NetlinkAck(m)?.errno
            throw NetlinkDecodeError(what: "netlink error message" + (errno.map { " (errno \($0))" } ?? ""), offset: i)
        default:
            guard m.type >> 8 == UInt16(NFNL_SUBSYS_NFTABLES) else {
                throw NetlinkDecodeError(what: "message type 0x\(String(m.type, radix: 16)) is not an nftables message", offset: i)
            }
            guard m.payload.count >= 4 else { throw NetlinkDecodeError(what: "nftables message without its nfgenmsg header", offset: i) }
            out.append((i, m))
        }
        i += (length + 3) & ~3
    }
    return out
}
