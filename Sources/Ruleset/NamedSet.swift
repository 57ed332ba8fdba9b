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
///
/// A value, kept behind one reference: a table's sets are copied whole where a table is
/// assembled, indexed for a diff or kept for the next one, and at 10,000 zones those copies
/// (seven retains each, one per array) were a fifth of a member edit's compile and diff. A copy
/// is now one retain; a change makes a new box and moves the fields into it.
public struct NamedSet: Hashable, Sendable {
    private struct Fields: Hashable, Sendable {
        var name: String
        var keyType: [DataType]
        var dataType: DataType?
        var flags: SetFlags
        var elements: ElementList
        var timeout: UInt64?
        var gcInterval: UInt32?
        var size: UInt32?
        var policy: SetPolicy
        var userData: [UInt8]?
        var elementExpressions: [UInt8]?
    }

    private final class Box: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
        static let moved = Box(Fields(name: "", keyType: [], dataType: nil, flags: [], elements: [], timeout: nil,
                                      gcInterval: nil, size: nil, policy: .performance, userData: nil, elementExpressions: nil))
    }

    private var box: Box

    /// The fields, for a change: moved out of the box (so that a box held only here leaves its
    /// arrays uniquely referenced, to be changed in place) and into a new one after.
    private var fields: Fields {
        get { box.fields }
        _modify {
            var f = box.fields
            box = Box.moved
            defer { box = Box(f) }
            yield &f
        }
    }

    public var name: String {
        get { box.fields.name }
        _modify { yield &fields.name }
    }
    /// The key's component types; more than one means a concatenation.
    public var keyType: [DataType] {
        get { box.fields.keyType }
        _modify { yield &fields.keyType }
    }
    /// The data type of a map; nil for a plain set.
    public var dataType: DataType? {
        get { box.fields.dataType }
        _modify { yield &fields.dataType }
    }
    public var flags: SetFlags {
        get { box.fields.flags }
        _modify { yield &fields.flags }
    }
    /// Elements in canonical order (sorted by key).
    public var elements: ElementList {
        get { box.fields.elements }
        _modify { yield &fields.elements }
    }
    /// Default element lifetime in milliseconds (`NFTA_SET_TIMEOUT`); nil for none.
    public var timeout: UInt64? {
        get { box.fields.timeout }
        _modify { yield &fields.timeout }
    }
    /// Garbage collection interval in milliseconds (`NFTA_SET_GC_INTERVAL`); nil for none.
    public var gcInterval: UInt32? {
        get { box.fields.gcInterval }
        _modify { yield &fields.gcInterval }
    }
    /// Maximum number of elements (`NFTA_SET_DESC_SIZE`); nil for no limit.
    public var size: UInt32? {
        get { box.fields.size }
        _modify { yield &fields.size }
    }
    /// Backend policy; `performance` is the kernel's default.
    public var policy: SetPolicy {
        get { box.fields.policy }
        _modify { yield &fields.policy }
    }
    /// `NFTA_SET_USERDATA` when it is not what zonewall writes for this declaration
    /// (`nil`: zonewall's own; `[]`: none at all).
    public var userData: [UInt8]? {
        get { box.fields.userData }
        _modify { yield &fields.userData }
    }
    /// Raw `NFTA_SET_EXPR`/`NFTA_SET_EXPRESSIONS` (per-element statements such as counters);
    /// nil when absent. zonewall writes none.
    public var elementExpressions: [UInt8]? {
        get { box.fields.elementExpressions }
        _modify { yield &fields.elementExpressions }
    }

    public init(name: String, keyType: [DataType], dataType: DataType? = nil,
                flags: SetFlags = [], elements: ElementList = [],
                timeout: UInt64? = nil, gcInterval: UInt32? = nil, size: UInt32? = nil,
                policy: SetPolicy = .performance, userData: [UInt8]? = nil, elementExpressions: [UInt8]? = nil) {
        box = Box(Fields(name: name, keyType: keyType, dataType: dataType,
                         flags: dataType == nil ? flags : flags.union(.map), elements: elements.sortedByKey(),
                         timeout: timeout, gcInterval: gcInterval, size: size, policy: policy,
                         userData: userData, elementExpressions: elementExpressions))
    }

    public init(name: String, keyType: [DataType], dataType: DataType? = nil,
                flags: SetFlags = [], elements: [SetElement]) {
        self.init(name: name, keyType: keyType, dataType: dataType, flags: flags, elements: ElementList(elements))
    }

    public static func == (a: NamedSet, b: NamedSet) -> Bool {
        a.box === b.box || a.box.fields == b.box.fields
    }

    public func hash(into hasher: inout Hasher) {
        box.fields.hash(into: &hasher)
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
        if box === other.box { return true }
        let a = box, b = other.box
        return a.fields.name == b.fields.name && a.fields.keyType == b.fields.keyType && a.fields.dataType == b.fields.dataType
            && a.fields.flags == b.fields.flags && a.fields.timeout == b.fields.timeout && a.fields.gcInterval == b.fields.gcInterval
            && a.fields.size == b.fields.size && a.fields.policy == b.fields.policy && a.fields.userData == b.fields.userData
            && a.fields.elementExpressions == b.fields.elementExpressions
    }
}
