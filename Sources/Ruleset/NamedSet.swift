/// Set flags (`NFT_SET_*`).
public struct SetFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let constant = SetFlags(rawValue: 0x2)
    public static let interval = SetFlags(rawValue: 0x4)
    public static let map = SetFlags(rawValue: 0x8)
    /// Elements expire (`NFT_SET_TIMEOUT`); nft sets it with a `timeout`.
    public static let timeout = SetFlags(rawValue: 0x10)
    /// Updated from the packet path (`NFT_SET_EVAL`, nft's `dynamic`).
    public static let dynamic = SetFlags(rawValue: 0x20)
}

/// `NFT_SET_POL_*`: what the kernel optimises a set's backend for.
public struct SetPolicy: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let performance = SetPolicy(rawValue: 0)
    public static let memory = SetPolicy(rawValue: 1)
}

/// The data half of a map element.
public enum ElementData: Hashable, Sendable {
    case verdict(Verdict)
    case value(Value)
}

/// One element: a key (one range per concatenated component) and, in maps, its data.
public struct SetElement: Hashable, Sendable, Comparable {
    public var key: [ValueRange]
    public var data: ElementData?

    public init(key: [ValueRange], data: ElementData? = nil) {
        self.key = key
        self.data = data
    }

    public static func < (a: SetElement, b: SetElement) -> Bool {
        for (x, y) in zip(a.key, b.key) where x != y { return x < y }
        return a.key.count < b.key.count
    }
}

/// A named set or map (`set NAME { … }` / `map NAME { … }`).
public struct NamedSet: Hashable, Sendable {
    public var name: String
    /// The key's component types; more than one means a concatenation.
    public var keyType: [DataType]
    /// The data type of a map; nil for a plain set.
    public var dataType: DataType?
    public var flags: SetFlags
    /// Elements in canonical order (sorted by key).
    public var elements: ElementList
    /// Default element lifetime in milliseconds (`NFTA_SET_TIMEOUT`); nil for none.
    public var timeout: UInt64?
    /// Garbage collection interval in milliseconds (`NFTA_SET_GC_INTERVAL`); nil for none.
    public var gcInterval: UInt32?
    /// Maximum number of elements (`NFTA_SET_DESC_SIZE`); nil for no limit.
    public var size: UInt32?
    /// Backend policy; `performance` is the kernel's default.
    public var policy: SetPolicy
    /// `NFTA_SET_USERDATA` when it is not what zonewall writes for this declaration
    /// (`nil`: zonewall's own; `[]`: none at all).
    public var userData: [UInt8]?
    /// Raw `NFTA_SET_EXPR`/`NFTA_SET_EXPRESSIONS` (per-element statements such as counters);
    /// nil when absent. zonewall writes none.
    public var elementExpressions: [UInt8]?

    public init(name: String, keyType: [DataType], dataType: DataType? = nil,
                flags: SetFlags = [], elements: ElementList = [],
                timeout: UInt64? = nil, gcInterval: UInt32? = nil, size: UInt32? = nil,
                policy: SetPolicy = .performance, userData: [UInt8]? = nil, elementExpressions: [UInt8]? = nil) {
        self.name = name
        self.keyType = keyType
        self.dataType = dataType
        self.flags = dataType == nil ? flags : flags.union(.map)
        self.elements = elements.sortedByKey()
        self.timeout = timeout
        self.gcInterval = gcInterval
        self.size = size
        self.policy = policy
        self.userData = userData
        self.elementExpressions = elementExpressions
    }

    public init(name: String, keyType: [DataType], dataType: DataType? = nil,
                flags: SetFlags = [], elements: [SetElement]) {
        self.init(name: name, keyType: keyType, dataType: dataType, flags: flags, elements: ElementList(elements))
    }

    public var isMap: Bool { dataType != nil }

    /// The declaration without its elements: what a table's skeleton compares.
    public var declaration: NamedSet {
        var d = self
        d.elements = []
        return d
    }

    /// `declaration == other.declaration`, without copying either set.
    public func hasSameDeclaration(as other: NamedSet) -> Bool {
        name == other.name && keyType == other.keyType && dataType == other.dataType && flags == other.flags
            && timeout == other.timeout && gcInterval == other.gcInterval && size == other.size && policy == other.policy
            && userData == other.userData && elementExpressions == other.elementExpressions
    }
}
