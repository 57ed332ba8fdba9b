/// Set flags (`NFT_SET_*`).
public struct SetFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let constant = SetFlags(rawValue: 0x2)
    public static let interval = SetFlags(rawValue: 0x4)
    public static let map = SetFlags(rawValue: 0x8)
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

    public init(name: String, keyType: [DataType], dataType: DataType? = nil,
                flags: SetFlags = [], elements: ElementList = []) {
        self.name = name
        self.keyType = keyType
        self.dataType = dataType
        self.flags = dataType == nil ? flags : flags.union(.map)
        self.elements = elements.sortedByKey()
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
}
