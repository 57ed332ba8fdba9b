import CNetfilter
import Ruleset

/// One committed transaction, as its `NFT_MSG_NEWGEN` announces it.
struct Commit: Hashable {
    var generation: UInt32
    /// `NFTA_GEN_PROC_PID`: the kernel puts `task_pid_nr(current)` there, the id of the
    /// committing *thread* in the initial pid namespace, not the process id.
    var threadID: UInt32
    var processName: String?
    /// The port id of the netlink socket that sent the batch (the message's `nlmsg_pid`).
    var portID: UInt32
    var touchedTable: Bool
    /// When the commit changed nothing in the table but set elements: the sets concerned.
    var onlyElementsOf: Set<String>? = nil
}

/// Turns the messages of the `NFNLGRP_NFTABLES` multicast group into `Commit`s.
///
/// The kernel announces each committed transaction as its object notifications
/// (`NFT_MSG_NEWTABLE`, `NFT_MSG_DELSETELEM`, …) followed by one `NFT_MSG_NEWGEN` carrying the
/// new generation and the committing process; commits are serialized per namespace, so one
/// batch's messages are never interleaved with another's. Pure: fed messages, returns events.
struct ChangeNotificationDecoder {
    /// The table whose objects make `touchedTable` true.
    let family: Family
    let table: String
    /// Whether a message of the batch under way concerned the table.
    private var touched = false
    /// Whether every such message was an element's, and the sets they named.
    private var onlyElements = true
    private var elementSets = Set<String>()

    init(family: Family, table: String) {
        self.family = family
        self.table = table
    }

    /// Consumes one message; returns the commit when it ends a batch (`NFT_MSG_NEWGEN`).
    mutating func consume(_ m: NetlinkMessage) -> Commit? {
        guard m.type >> 8 == UInt16(NFNL_SUBSYS_NFTABLES) else { return nil }
        let type = m.type & 0xff
        if type == NFT_MSG_NEWGEN.u16 {
            let a = m.attributes
            defer {
                touched = false
                onlyElements = true
                elementSets = []
            }
            // The generation with libnftnl; the committing thread and process, which
            // libnftnl's `nftnl_gen` does not keep, from the attributes.
            return Commit(generation: NftnlGen.generation(of: m) ?? 0,
                          threadID: a[NFTA_GEN_PROC_PID.u16]?.u32 ?? 0,
                          processName: a[NFTA_GEN_PROC_NAME.u16]?.string,
                          portID: m.portID,
                          touchedTable: touched,
                          onlyElementsOf: touched && onlyElements ? elementSets : nil)
        }
        // Once something other than an element changed, the rest of the batch tells nothing more.
        guard !(touched && !onlyElements), let attribute = Self.tableAttribute(of: type) else { return nil }
        let a = m.attributes
        guard m.payload.first == family.rawValue, a[attribute]?.string == table else { return nil }
        touched = true
        if type == NFT_MSG_NEWSETELEM.u16 || type == NFT_MSG_DELSETELEM.u16, let set = a[NFTA_SET_ELEM_LIST_SET.u16]?.string {
            elementSets.insert(set)
        } else {
            onlyElements = false
        }
        return nil
    }

    /// Notifications were lost: the batch under way may have touched the table in any way, so
    /// its event says so rather than risk hiding a change.
    mutating func lost() {
        touched = true
        onlyElements = false
    }

    /// The attribute naming the table in an object notification; nil for other messages.
    static func tableAttribute(of type: UInt16) -> UInt16? {
        switch type {
        case NFT_MSG_NEWTABLE.u16, NFT_MSG_DELTABLE.u16: NFTA_TABLE_NAME.u16
        case NFT_MSG_NEWCHAIN.u16, NFT_MSG_DELCHAIN.u16: NFTA_CHAIN_TABLE.u16
        case NFT_MSG_NEWRULE.u16, NFT_MSG_DELRULE.u16: NFTA_RULE_TABLE.u16
        case NFT_MSG_NEWSET.u16, NFT_MSG_DELSET.u16: NFTA_SET_TABLE.u16
        case NFT_MSG_NEWSETELEM.u16, NFT_MSG_DELSETELEM.u16: NFTA_SET_ELEM_LIST_TABLE.u16
        case NFT_MSG_NEWOBJ.u16, NFT_MSG_DELOBJ.u16: NFTA_OBJ_TABLE.u16
        case NFT_MSG_NEWFLOWTABLE.u16, NFT_MSG_DELFLOWTABLE.u16: NFTA_FLOWTABLE_TABLE.u16
        // NFT_MSG_DESTROYTABLE (26) … NFT_MSG_DESTROYFLOWTABLE (32), Linux 6.3, newer than
        // these headers. The kernel announces destroys as deletes today; these cover it if that
        // ever changes. Each names its table in attribute 1, like the matching delete.
        case 26...32: 1
        default: nil
        }
    }
}
