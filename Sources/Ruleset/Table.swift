/// Table flags (`NFT_TABLE_F_*`).
public struct TableFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `flags dormant`: the table's base chains are unhooked, so it filters nothing.
    public static let dormant = TableFlags(rawValue: 0x1)
    /// `NFT_TABLE_F_OWNER`: only the netlink socket that created the table may change it, and
    /// the table goes away with that socket.
    public static let owner = TableFlags(rawValue: 0x2)
    /// `NFT_TABLE_F_PERSIST` (Linux 6.9+): an owned table outlives its owner's socket, ownerless.
    public static let persist = TableFlags(rawValue: 0x4)

    /// nft's words for the flags, unknown bits in hex: `dormant,owner`.
    public var description: String {
        var words: [String] = []
        if contains(.dormant) { words.append("dormant") }
        if contains(.owner) { words.append("owner") }
        if contains(.persist) { words.append("persist") }
        let rest = rawValue & ~0x7
        if rest != 0 { words.append("0x" + String(rest, radix: 16)) }
        return words.isEmpty ? "none" : words.joined(separator: ",")
    }
}

/// A table with its chains and sets.
public struct Table: Hashable, Sendable {
    public var family: Family
    public var name: String
    /// Chains in declaration order; base chains and regular chains alike.
    public var chains: [Chain]
    /// Sets and maps in declaration order.
    public var sets: [NamedSet]
    /// The table's flags; a compiled table has none (a dormant one filters nothing).
    public var flags: TableFlags
    /// `NFTA_TABLE_USERDATA` (nft keeps a table's comment there); nil when absent.
    public var userData: [UInt8]?
    /// Stateful objects (counters, quotas, limits, …) and flowtables, as a kernel lists them.
    /// A compiled table declares none, so any found in the kernel is drift.
    public var objects: [TableObject]

    public init(family: Family, name: String, chains: [Chain] = [], sets: [NamedSet] = [],
                flags: TableFlags = [], userData: [UInt8]? = nil, objects: [TableObject] = []) {
        self.family = family
        self.name = name
        self.chains = chains
        self.sets = sets
        self.flags = flags
        self.userData = userData
        self.objects = objects
    }

    /// The table with every set emptied: the part that changes only when the policy's shape does.
    public var skeleton: Table {
        var t = self
        t.sets = sets.map(\.declaration)
        return t
    }

    public func set(named name: String) -> NamedSet? { sets.first { $0.name == name } }
    public func chain(named name: String) -> Chain? { chains.first { $0.name == name } }

    /// Number of elements over all sets and maps.
    public var elementCount: Int { sets.reduce(0) { $0 + $1.elements.count } }
}

/// A table's object that is neither a chain nor a set: a stateful object (`counter`, `quota`,
/// `limit`, `ct helper`, …) or a `flowtable`. Known by its kind and name only.
public struct TableObject: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// As nft names it: `counter`, `quota`, `flowtable`, …
    public var kind: String
    public var name: String

    public init(kind: String, name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind) \(name)" }

    public static func < (a: TableObject, b: TableObject) -> Bool { (a.kind, a.name) < (b.kind, b.name) }
}
