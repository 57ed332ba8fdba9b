/// The elements of one set or map, stored flat.
///
/// A rule set can hold hundreds of thousands of elements. As `[SetElement]`, each element is a
/// heap-allocated array of ranges plus its data, about 230 bytes. Here an element is `stride`
/// bytes in one shared buffer: for each key component its low end, then its high end, in
/// network order. A concatenated IPv6 interval key takes 38 bytes. Map data is kept in a
/// parallel column that stores each distinct value once (`DataColumn`).
///
/// Because the bytes are big-endian and the components are laid out in order, comparing two
/// elements' bytes with `memcmp` orders them exactly as `SetElement`'s `<` does. Sorting and
/// diffing therefore work on the bytes and never build `SetElement` values.
///
/// The list is a `RandomAccessCollection` of `SetElement`, so code that reads elements does
/// not need to know any of this. All elements of a list have the same key layout. The first
/// element appended fixes that layout.
public struct ElementList: Sendable {
    /// The byte width of each key component. It is empty until the first element is added.
    public private(set) var componentWidths: [Int] = []
    /// Bytes per element.
    private var stride = 0
    private var keys: [UInt8] = []
    /// One entry per element in a map, and empty for a plain set.
    private var data = DataColumn()
    private var holdsData = false
    /// Whether the elements are in key order, kept up to date by every append (one comparison
    /// with the element before), so that diffing and hashing a large list need not check it.
    private var inKeyOrder = true

    public init() {}

    public init(_ elements: some Sequence<SetElement>) {
        self.init()
        for e in elements { append(e) }
    }

    /// Appends `element`. Its key layout must match the elements already in the list.
    public mutating func append(_ element: SetElement) {
        precondition(!element.key.isEmpty, "an element has at least one key component")
        if stride == 0 {
            componentWidths = element.key.map(\.lo.width)
            stride = componentWidths.reduce(0, +) * 2
            holdsData = element.data != nil
        }
        precondition(element.key.count == componentWidths.count
                     && zip(element.key, componentWidths).allSatisfy { $0.lo.width == $1 }
                     && (element.data != nil) == holdsData,
                     "every element of a set has the same key layout")
        for range in element.key {
            range.lo.appendBytes(to: &keys)
            range.hi.appendBytes(to: &keys)
        }
        if let d = element.data { data.append(d) }
        noteAppended()
    }

    /// Clears `inKeyOrder` when the element just appended sorts before the one before it.
    @inline(__always)
    private mutating func noteAppended() {
        guard inKeyOrder, keys.count >= 2 * stride else { return }
        let s = stride, n = keys.count
        let descending = keys.withUnsafeBufferPointer { p in compareBytes(p.baseAddress! + n - 2 * s, p.baseAddress! + n - s, s) > 0 }
        if descending { inKeyOrder = false }
    }

    /// Appends element `i` of `other`, copying its bytes.
    public mutating func append(contentsOf other: ElementList, at i: Int) {
        if stride == 0 {
            componentWidths = other.componentWidths
            stride = other.stride
            holdsData = other.holdsData
        }
        precondition(componentWidths == other.componentWidths && holdsData == other.holdsData,
                     "every element of a set has the same key layout")
        keys.append(contentsOf: other.keys[i * stride ..< (i + 1) * stride])
        if holdsData { data.append(other.data[i]) }
        noteAppended()
    }

    /// Appends an element with a single key component `lo-hi`, written straight into the
    /// buffer: the compiler's address maps hold 100,000s of these, and building each as a
    /// `SetElement` (an array per key) costs an allocation apiece.
    public mutating func appendRange(_ lo: Value, _ hi: Value, data element: ElementData? = nil) {
        appendKeyRange(lo, hi, holdingData: element != nil)
        if let element { data.append(element) }
        noteAppended()
    }

    /// The key bytes of `appendRange`.
    @inline(__always)
    private mutating func appendKeyRange(_ lo: Value, _ hi: Value, holdingData: Bool) {
        if stride == 0 {
            componentWidths = [lo.width]
            stride = lo.width * 2
            holdsData = holdingData
        }
        precondition(componentWidths.count == 1 && componentWidths[0] == lo.width && hi.width == lo.width
                     && holdingData == holdsData, "every element of a set has the same key layout")
        if lo.width == 16 {
            // One append of both ends: per-element appends dominate building a 100,000-range map.
            var bytes = (lo.high.bigEndian, lo.low.bigEndian, hi.high.bigEndian, hi.low.bigEndian)
            withUnsafeBytes(of: &bytes) { keys.append(contentsOf: $0) }
        } else {
            Self.appendBigEndian(lo, to: &keys)
            Self.appendBigEndian(hi, to: &keys)
        }
    }

    /// Appends an element of a concatenated interval set as the kernel stores it: `key` holds
    /// each component's low end and `keyEnd` its high end, big-endian, component `c` at
    /// `offsets[c]` with `widths[c]` bytes (the kernel pads each to 4). A component whose ends
    /// come reversed is stored low end first. Returns false, appending nothing, when the bytes
    /// are too short or the layout differs from the list's: the caller then leaves the element out.
    public mutating func appendConcatenated(key: ArraySlice<UInt8>, keyEnd: ArraySlice<UInt8>,
                                            widths: [Int], offsets: [Int], data element: ElementData?) -> Bool {
        guard widths.count == offsets.count, !widths.isEmpty,
              zip(widths, offsets).allSatisfy({ $0 > 0 && $1 + $0 <= key.count && $1 + $0 <= keyEnd.count }) else { return false }
        if stride == 0 {
            componentWidths = widths
            stride = widths.reduce(0, +) * 2
            holdsData = element != nil
        }
        guard componentWidths == widths, (element != nil) == holdsData else { return false }
        for (w, o) in zip(widths, offsets) {
            let lo = key.index(key.startIndex, offsetBy: o), hi = keyEnd.index(keyEnd.startIndex, offsetBy: o)
            let (low, high) = (key[lo ..< lo + w], keyEnd[hi ..< hi + w])
            let reversed = high.lexicographicallyPrecedes(low)
            keys.append(contentsOf: reversed ? high : low)
            keys.append(contentsOf: reversed ? low : high)
        }
        if let element { data.append(element) }
        noteAppended()
        return true
    }

    /// Room for `count` more elements of `width`-byte single-component keys.
    public mutating func reserveCapacity(ranges count: Int, width: Int, data: Bool) {
        keys.reserveCapacity(keys.count + count * 2 * width)
        if data { self.data.reserveCapacity(self.data.count + count) }
    }

    /// `value.appendBytes(to:)`, a word at a time.
    @inline(__always)
    private static func appendBigEndian(_ value: Value, to out: inout [UInt8]) {
        switch value.width {
        case 16:
            withUnsafeBytes(of: value.high.bigEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: value.low.bigEndian) { out.append(contentsOf: $0) }
        case 4:
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: value.low).bigEndian) { out.append(contentsOf: $0) }
        default:
            value.appendBytes(to: &out)
        }
    }

    /// How many elements at the start, and then at the end, both lists (of the same layout)
    /// have in common, key and data; the two counts never overlap in either list.
    public static func commonEnds(_ a: ElementList, _ b: ElementList) -> (prefix: Int, suffix: Int) {
        guard a.stride == b.stride, a.stride > 0, a.holdsData == b.holdsData else { return (0, 0) }
        let s = a.stride
        let n = Swift.min(a.count, b.count)
        return a.keys.withUnsafeBufferPointer { pa in
            b.keys.withUnsafeBufferPointer { pb in
                func sameKey(_ i: Int, _ j: Int) -> Bool {
                    compareBytes(pa.baseAddress! + i * s, pb.baseAddress! + j * s, s) == 0
                }
                var prefix = 0
                // Whole 8-byte words first, then element by element from where they differ.
                let words = n * s / 8
                let wa = UnsafeRawPointer(pa.baseAddress!), wb = UnsafeRawPointer(pb.baseAddress!)
                var w = 0
                while w < words, wa.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) == wb.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self) {
                    w += 1
                }
                prefix = Swift.min(n, w * 8 / s)
                while prefix < n, sameKey(prefix, prefix) { prefix += 1 }
                if a.holdsData {
                    var k = 0
                    while k < prefix, a.data[k] == b.data[k] { k += 1 }
                    prefix = k
                }
                var suffix = 0
                while suffix < n - prefix, sameKey(a.count - 1 - suffix, b.count - 1 - suffix),
                      !a.holdsData || a.data[a.count - 1 - suffix] == b.data[b.count - 1 - suffix] {
                    suffix += 1
                }
                return (prefix, suffix)
            }
        }
    }

    /// Whether both lists use the very same storage (a list compared with an unmodified copy of
    /// itself): their contents are then equal without looking at them.
    public func sharesStorage(with other: ElementList) -> Bool {
        guard count == other.count, componentWidths == other.componentWidths else { return false }
        return sameBuffer(keys, other.keys) && data.sharesStorage(with: other.data)
    }

    /// Elements `range` of the list, in the same order, as a list of their own.
    public func elements(_ range: Range<Int>) -> ElementList {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "element range out of bounds")
        if range == 0..<count { return self }
        var out = ElementList()
        guard !range.isEmpty else { return out }
        out.componentWidths = componentWidths
        out.stride = stride
        out.holdsData = holdsData
        out.keys = Array(keys[range.lowerBound * stride ..< range.upperBound * stride])
        if holdsData { out.data = data.slice(range) }
        out.inKeyOrder = inKeyOrder || out.scanKeyOrder()
        return out
    }

    /// Calls `body` with every element's key bytes (`count × stride`, in list order) and the
    /// map data (empty for a plain set): for hashing and encoding without rebuilding elements.
    public func withStorage<R>(_ body: (UnsafeBufferPointer<UInt8>, DataColumn) throws -> R) rethrows -> R {
        try keys.withUnsafeBufferPointer { try body($0, data) }
    }

    /// Stores each distinct data value once (appending already shares a value with the
    /// element before): for a map that is held for long, once it is built. Changes nothing
    /// that can be observed but memory.
    public mutating func shareData() { data.intern() }

    /// For a map built from a few distinct data values known up front (a zone's jump per
    /// address): the empty list takes `values` (distinct), and `appendRange(_:_:dataSlot:)`
    /// refers to them by index, so that no value is hashed or compared per element.
    public mutating func startData(with values: [ElementData]) {
        precondition(isEmpty, "data values are set before the first element")
        data.start(with: values)
    }

    /// `appendRange(lo, hi, data: values[slot])` for the `values` given to `startData(with:)`.
    public mutating func appendRange(_ lo: Value, _ hi: Value, dataSlot slot: UInt32) {
        appendKeyRange(lo, hi, holdingData: true)
        data.append(slot: slot)
        noteAppended()
    }

    /// The data values of the elements (a map's verdicts), usually each once; possibly more
    /// after slicing, whose result shares its list's values.
    public var dataValues: [ElementData] { data.storedValues }

    // MARK: Order

    /// Whether both lists hold elements of the same shape (key widths, data or not); an empty
    /// list fits any.
    public func hasSameLayout(as other: ElementList) -> Bool {
        isEmpty || other.isEmpty || (componentWidths == other.componentWidths && holdsData == other.holdsData)
    }

    /// Compares element `i` of `a` with element `j` of `b` by key: negative, zero or positive.
    /// Both lists must have the same layout.
    public static func compareKeys(_ a: ElementList, _ i: Int, _ b: ElementList, _ j: Int) -> Int32 {
        precondition(a.stride == b.stride, "comparing elements of different layouts")
        let n = a.stride
        return a.keys.withUnsafeBufferPointer { pa in
            b.keys.withUnsafeBufferPointer { pb in
                compareBytes(pa.baseAddress! + i * n, pb.baseAddress! + j * n, n)
            }
        }
    }

    /// Whether element `i` of `a` and element `j` of `b` are the same element (key and data).
    public static func elementsEqual(_ a: ElementList, _ i: Int, _ b: ElementList, _ j: Int) -> Bool {
        a.holdsData == b.holdsData && compareKeys(a, i, b, j) == 0 && (!a.holdsData || a.data[i] == b.data[j])
    }

    /// Whether the elements are in canonical (key) order.
    public var isSortedByKey: Bool { inKeyOrder }

    /// `isSortedByKey`, found by comparing every element with the next.
    private func scanKeyOrder() -> Bool {
        let n = count
        guard n > 1 else { return true }
        return keys.withUnsafeBufferPointer { p in
            for k in 1..<n where compareBytes(p.baseAddress! + (k - 1) * stride, p.baseAddress! + k * stride, stride) > 0 {
                return false
            }
            return true
        }
    }

    /// The same elements in canonical (key) order.
    public func sortedByKey() -> ElementList {
        guard !isSortedByKey else { return self }
        let s = stride
        var order = Array(0..<count)
        keys.withUnsafeBufferPointer { p in
            order.sort { compareBytes(p.baseAddress! + $0 * s, p.baseAddress! + $1 * s, s) < 0 }
        }
        var out = ElementList()
        out.componentWidths = componentWidths
        out.stride = stride
        out.holdsData = holdsData
        out.keys.reserveCapacity(keys.count)
        if holdsData { out.data = data.permuted(order) }
        for i in order {
            out.keys.append(contentsOf: keys[i * s ..< (i + 1) * s])
        }
        return out
    }
}

/// Whether two arrays are one buffer (copies of each other that neither has changed since).
private func sameBuffer<T>(_ a: [T], _ b: [T]) -> Bool {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in pa.baseAddress == pb.baseAddress } }
}

/// `memcmp`, written out so that `Ruleset` needs no C library.
@inline(__always)
private func compareBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
    for k in 0..<n where a[k] != b[k] { return a[k] < b[k] ? -1 : 1 }
    return 0
}

extension ElementList: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { stride == 0 ? 0 : keys.count / stride }

    /// Element `i`, rebuilt from its bytes.
    public subscript(i: Int) -> SetElement {
        precondition(i >= 0 && i < endIndex, "element index out of range")
        var offset = i * stride
        var key: [ValueRange] = []
        key.reserveCapacity(componentWidths.count)
        keys.withUnsafeBufferPointer { p in
            for w in componentWidths {
                let lo = Value(bytes: UnsafeBufferPointer(rebasing: p[offset ..< offset + w]))
                let hi = Value(bytes: UnsafeBufferPointer(rebasing: p[offset + w ..< offset + 2 * w]))
                key.append(ValueRange(lo, hi))
                offset += 2 * w
            }
        }
        return SetElement(key: key, data: holdsData ? data[i] : nil)
    }
}

extension ElementList: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: SetElement...) { self.init(elements) }
}

extension ElementList: Hashable {
    public static func == (a: ElementList, b: ElementList) -> Bool {
        if a.isEmpty || b.isEmpty { return a.isEmpty && b.isEmpty }
        return a.componentWidths == b.componentWidths && a.keys == b.keys && a.data == b.data
    }

    public func hash(into h: inout Hasher) {
        h.combine(count)
        guard !isEmpty else { return }
        h.combine(componentWidths)
        h.combine(keys)
        h.combine(data)
    }
}

extension ElementList: CustomStringConvertible {
    public var description: String { "\(Array(self))" }
}

/// A map's data, one entry per element, each distinct value stored once: a verdict map of
/// 100,000 address ranges jumps to a few thousand chains, and an `ElementData` takes 32 bytes
/// where a slot takes 4.
public struct DataColumn: RandomAccessCollection, Hashable, Sendable {
    /// The distinct values (a value may appear twice where it was not found when appended).
    private var values: [ElementData] = []
    /// Per element, its value's index in `values`.
    private var slots: [UInt32] = []

    public var startIndex: Int { 0 }
    public var endIndex: Int { slots.count }
    public subscript(i: Int) -> ElementData { values[Int(slots[i])] }

    /// Element `i`'s index among the column's values: equal indexes hold equal values (equal
    /// values usually share one index; see `intern`).
    public func slot(_ i: Int) -> Int { Int(slots[i]) }

    /// Appends `value`, sharing the entry of the element before when it is the same (a zone's
    /// addresses usually sit together); `intern` shares the rest.
    mutating func append(_ value: ElementData) {
        if let last = slots.last, values[Int(last)] == value {
            slots.append(last)
        } else {
            slots.append(UInt32(values.count))
            values.append(value)
        }
    }

    mutating func reserveCapacity(_ n: Int) { slots.reserveCapacity(n) }

    /// Starts an empty column with `distinct` as its values, which `append(slot:)` refers to.
    mutating func start(with distinct: [ElementData]) {
        precondition(slots.isEmpty, "values are set before the first element")
        values = distinct
    }

    /// Appends the value at `slot` of the values the column started with.
    mutating func append(slot: UInt32) {
        precondition(Int(slot) < values.count, "a slot of the values the column started with")
        slots.append(slot)
    }

    /// Each distinct value stored once.
    mutating func intern() {
        var index: [ElementData: UInt32] = [:]
        var distinct: [ElementData] = []
        var remap = [UInt32](repeating: 0, count: values.count)
        for (i, v) in values.enumerated() {
            if let k = index[v] {
                remap[i] = k
            } else {
                let k = UInt32(distinct.count)
                index[v] = k
                distinct.append(v)
                remap[i] = k
            }
        }
        guard distinct.count < values.count else { return }
        values = distinct
        slots = slots.map { remap[Int($0)] }
    }

    /// The values elements hold, usually each once (a superset after slicing: a slice shares
    /// its list's values).
    var storedValues: [ElementData] { values }

    /// Elements `range`, sharing the values.
    func slice(_ range: Range<Int>) -> DataColumn {
        var out = DataColumn()
        out.values = values
        out.slots = Array(slots[range])
        return out
    }

    /// Element `order[k]` at `k`, sharing the values.
    func permuted(_ order: [Int]) -> DataColumn {
        var out = DataColumn()
        out.values = values
        out.slots = order.map { slots[$0] }
        return out
    }

    func sharesStorage(with other: DataColumn) -> Bool {
        sameBuffer(values, other.values) && sameBuffer(slots, other.slots)
    }

    /// Equal when every element's value is: how the values are shared does not matter.
    public static func == (a: DataColumn, b: DataColumn) -> Bool {
        guard a.count == b.count else { return false }
        if a.values == b.values && a.slots == b.slots { return true }
        return a.elementsEqual(b)
    }

    public func hash(into h: inout Hasher) {
        h.combine(count)
        for v in self { h.combine(v) }
    }
}
