/// One step of a transaction, in nftables' verbs.
public enum Change: Hashable, Sendable {
    /// `add table`: creates it, or does nothing if it exists.
    case addTable
    /// `delete table`, with everything in it.
    case deleteTable
    /// `add set` / `add map`: the declaration only; elements come as `addElements`.
    case addSet(NamedSet)
    /// `add chain`, without rules.
    case addChain(Chain)
    /// `add rule` at the end of a chain.
    case addRule(chain: String, Rule)
    /// `add element`
    case addElements(set: String, ElementList)
    /// `delete element`
    case deleteElements(set: String, ElementList)
}

/// An ordered list of changes to one table, applied atomically as one batch.
///
/// It is a value: `plan`, logs and tests print it; the kernel layer encodes it.
public struct Transaction: Hashable, Sendable {
    public var family: Family
    public var table: String
    public var changes: [Change]
    /// Declarations of the sets whose elements change without being declared in the
    /// transaction itself: the encoder needs their key types, and should not have to ask the
    /// kernel for them.
    public var setDeclarations: [String: NamedSet]
    /// The flags an `addTable` that creates the table gives it. An `addTable` straight before
    /// a `deleteTable` only makes sure the table exists and changes nothing of one that does
    /// (the kernel refuses to change an owned table's `owner` flag).
    public var tableFlags: TableFlags
    /// The user data an `addTable` that creates the table gives it.
    public var tableUserData: [UInt8]?

    public init(family: Family, table: String, changes: [Change] = [], setDeclarations: [String: NamedSet] = [:],
                tableFlags: TableFlags = [], tableUserData: [UInt8]? = nil) {
        self.family = family
        self.table = table
        self.changes = changes
        self.setDeclarations = setDeclarations
        self.tableFlags = tableFlags
        self.tableUserData = tableUserData
    }

    /// Whether the `addTable` at `index` of `changes` only makes sure the table exists (the
    /// knftables idiom `add table; delete table`), rather than creating it with its attributes.
    public func onlyEnsuresTable(at index: Int) -> Bool {
        index + 1 < changes.count && changes[index + 1] == .deleteTable
    }

    public var isEmpty: Bool { changes.isEmpty }

    /// True when the transaction swaps the whole table rather than editing elements.
    public var replacesTable: Bool { changes.contains(.deleteTable) }

    /// Number of set elements added or deleted.
    public var elementChanges: Int {
        changes.reduce(0) {
            switch $1 {
            case .addElements(_, let e), .deleteElements(_, let e): $0 + e.count
            default: $0
            }
        }
    }

    /// The transaction that replaces the table with `desired` whether or not it exists:
    /// `add table; delete table;` then everything, in dependency order.
    public static func replace(with desired: Table) -> Transaction {
        var tx = create(desired)
        tx.changes = [.addTable, .deleteTable] + tx.changes
        return tx
    }

    /// The transaction that creates `desired`, assuming it does not exist: a staged build's
    /// order in one transaction (`StagePlan`), so that the kernel lists the
    /// table's objects in the same order whether it was built in stages or replaced at once.
    public static func create(_ desired: Table) -> Transaction {
        StagePlan(creating: desired, budget: .max)[0].transaction
    }

    /// The transaction from the table as it is (`actual`, nil when absent) to `desired`.
    ///
    /// When only set elements differ, it deletes and adds exactly the elements that changed;
    /// when `desired` only adds sets, chains or trailing rules of regular chains, it makes those
    /// additions (`additions(from:to:)`); otherwise it replaces the table as a whole. An empty
    /// transaction means "in sync".
    public static func diff(from actual: Table?, to desired: Table) -> Transaction {
        guard let actual else { return replace(with: desired) }
        guard actual.hasSkeleton(of: desired) else { return additions(from: actual, to: desired) ?? replace(with: desired) }
        // Tables compiled from policies list their sets in the same order: pair them up directly.
        let sameOrder = actual.sets.count == desired.sets.count && zip(actual.sets, desired.sets).allSatisfy { $0.name == $1.name }
        let old = sameOrder ? [:] : Dictionary(actual.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var before: [NamedSet] = [], after: [NamedSet] = []
        for (k, new) in desired.sets.enumerated() {
            guard let was = sameOrder ? actual.sets[k] : old[new.name], was.elements != new.elements else { continue }
            before.append(was)
            after.append(new)
        }
        return elementChanges(from: before, to: after, family: desired.family, table: desired.name)
    }
}

extension Transaction {
    /// The element additions and deletions that bring each set of `actual` to the set of
    /// `desired` at the same position (the same set, read from a kernel). Deletions come first:
    /// an interval whose data changed is removed before its replacement lands.
    public static func elementChanges(from actual: [NamedSet], to desired: [NamedSet], family: Family, table: String) -> Transaction {
        precondition(actual.count == desired.count, "one actual set per desired set")
        var tx = Transaction(family: family, table: table)
        var adds: [Change] = []
        for (have, want) in zip(actual, desired) {
            let (removed, added) = elementDiff(have.elements, want.elements)
            if !removed.isEmpty { tx.changes.append(.deleteElements(set: want.name, removed)) }
            if !added.isEmpty { adds.append(.addElements(set: want.name, added)) }
            if !removed.isEmpty || !added.isEmpty { tx.setDeclarations[want.name] = want.declaration }
        }
        tx.changes += adds
        return tx
    }

    /// Elements only in `old` and only in `new`, by one merge of the two sorted lists on their
    /// bytes: one changed member in a 100,000-element set costs one linear scan and no
    /// allocation per element.
    static func elementDiff(_ old: ElementList, _ new: ElementList) -> (removed: ElementList, added: ElementList) {
        // Lists of different shapes share no element (a tampered set): all out, all in.
        if old.isEmpty || new.isEmpty || !old.hasSameLayout(as: new) { return (old, new) }
        let a = old.sortedByKey(), b = new.sortedByKey()
        var removed = ElementList(), added = ElementList()
        // An edit changes a few elements of a large set: skip the common ends at memcmp speed.
        let (same, sameTail) = ElementList.commonEnds(a, b)
        var i = same, j = same
        let aEnd = a.count - sameTail, bEnd = b.count - sameTail
        while i < aEnd && j < bEnd {
            let order = ElementList.compareKeys(a, i, b, j)
            if order < 0 {
                removed.append(contentsOf: a, at: i); i += 1
            } else if order > 0 {
                added.append(contentsOf: b, at: j); j += 1
            } else {
                if !ElementList.elementsEqual(a, i, b, j) {
                    // Same key, different data (a map element's verdict changed).
                    removed.append(contentsOf: a, at: i)
                    added.append(contentsOf: b, at: j)
                }
                i += 1
                j += 1
            }
        }
        while i < aEnd { removed.append(contentsOf: a, at: i); i += 1 }
        while j < bEnd { added.append(contentsOf: b, at: j); j += 1 }
        return (removed, added)
    }
}

extension Table {
    /// The skeleton with chains and sets in name order: the kernel's listing order is not
    /// meaningful (a rule's position inside its chain is, and is kept).
    public var normalizedSkeleton: Table {
        var t = skeleton
        t.chains.sort { $0.name < $1.name }
        t.sets.sort { $0.name < $1.name }
        t.objects.sort()
        return t
    }

    /// Whether both tables have the same skeleton (everything but set elements), whatever the
    /// listing order. Tables in the same order, as compiled ones are, are compared in place,
    /// without copying or sorting 10,000s of chains and sets.
    public func hasSkeleton(of other: Table) -> Bool {
        if family == other.family, name == other.name, flags == other.flags, userData == other.userData,
           objects == other.objects, chains.count == other.chains.count, sets.count == other.sets.count, hasChainsAndDeclarations(of: other) {
            return true
        }
        return normalizedSkeleton == other.normalizedSkeleton
    }

    /// Chain by chain and set by set at the same positions, read in place. A chain or set that
    /// an edit left alone is the very same value in both tables (the same bits: the same
    /// strings and storage), which is checked first; only the others are compared field by
    /// field. Copying 10,000s of them out of their arrays (a retain per field) cost more than
    /// the comparison itself.
    private func hasChainsAndDeclarations(of other: Table) -> Bool {
        let sameChains = chains.withUnsafeBufferPointer { a in
            other.chains.withUnsafeBufferPointer { b in
                a.baseAddress == b.baseAddress || a.indices.allSatisfy { sameBits(a, b, $0) || a[$0] == b[$0] }
            }
        }
        guard sameChains else { return false }
        return sets.withUnsafeBufferPointer { a in
            other.sets.withUnsafeBufferPointer { b in
                a.baseAddress == b.baseAddress || a.indices.allSatisfy { sameBits(a, b, $0) || a[$0].hasSameDeclaration(as: b[$0]) }
            }
        }
    }

    /// True when both tables hold the same objects, whatever their listing order.
    public func isEquivalent(to other: Table) -> Bool {
        guard hasSkeleton(of: other) else { return false }
        let mine = Dictionary(sets.map { ($0.name, $0.elements) }, uniquingKeysWith: { a, _ in a })
        return other.sets.allSatisfy { set in
            guard let elements = mine[set.name] else { return false }
            return elements.holdsSameElements(as: set.elements)
        }
    }
}

extension ElementList {
    /// Whether both lists hold the same elements, whatever their order.
    public func holdsSameElements(as other: ElementList) -> Bool {
        self == other || Transaction.elementDiff(self, other) == ([], [])
    }
}

extension Transaction {
    /// The transaction as nft commands, one per line.
    public var nftText: String {
        let t = "\(family) \(table)"
        var lines: [String] = []
        var sets: [String: NamedSet] = [:]
        for c in changes {
            switch c {
            case .addTable:
                let attrs = lines.isEmpty && changes.count > 1 && changes[1] == .deleteTable ? [] : tableFlags.isEmpty ? [] : ["flags \(tableFlags);"]
                lines.append("add table \(t)" + (attrs.isEmpty ? "" : " { \(attrs.joined(separator: " ")) }"))
            case .deleteTable: lines.append("delete table \(t)")
            case .addSet(let s):
                sets[s.name] = s
                let body = NftText.render(s).split(separator: "\n").dropFirst().dropLast()
                    .map { $0.trimmingPrefix("\t\t") }.joined(separator: "; ")
                lines.append("add \(s.isMap ? "map" : "set") \(t) \(s.name) { \(body); }")
            case .addChain(let ch):
                if let b = ch.base {
                    lines.append("add chain \(t) \(ch.name) { type \(b.type.rawValue) hook \(b.hook) priority \(b.priority); policy \(NftText.render(b.policy)); }")
                } else {
                    lines.append("add chain \(t) \(ch.name)")
                }
            case .addRule(let chain, let r): lines.append("add rule \(t) \(chain) \(NftText.render(r))")
            case .addElements(let name, let elems), .deleteElements(let name, let elems):
                let verb = if case .addElements = c { "add" } else { "delete" }
                let set = sets[name] ?? NamedSet(name: name, keyType: [])
                let items = set.keyType.isEmpty ? ["\(elems.count) elements"] : elems.map { NftText.render($0, of: set) }
                lines.append("\(verb) element \(t) \(name) { \(items.joined(separator: ", ")) }")
            }
        }
        return lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
    }
}

extension Substring {
    func trimmingPrefix(_ p: String) -> Substring { hasPrefix(p) ? dropFirst(p.count) : self }
}

/// Whether element `i` of `a` and of `b` hold the same bytes. Equal bytes are the same value
/// (the same references, the same scalars); different bytes may still be equal values (two
/// copies of a string, or padding), which the caller then compares.
@inline(__always)
func sameBits<T>(_ a: UnsafeBufferPointer<T>, _ b: UnsafeBufferPointer<T>, _ i: Int) -> Bool {
    let n = MemoryLayout<T>.size
    let pa = UnsafeRawPointer(a.baseAddress! + i), pb = UnsafeRawPointer(b.baseAddress! + i)
    var k = 0
    while k + 8 <= n {
        if pa.loadUnaligned(fromByteOffset: k, as: UInt64.self) != pb.loadUnaligned(fromByteOffset: k, as: UInt64.self) { return false }
        k += 8
    }
    while k < n {
        if pa.load(fromByteOffset: k, as: UInt8.self) != pb.load(fromByteOffset: k, as: UInt8.self) { return false }
        k += 1
    }
    return true
}
