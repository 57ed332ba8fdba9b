import CNetfilter
import Ruleset

/// What the kernel needs to know about a set to store its elements.
struct SetShape: Hashable, Sendable {
    var keyType: [DataType]
    var dataType: DataType?
    var isInterval: Bool

    init(keyType: [DataType], dataType: DataType? = nil, isInterval: Bool) {
        self.keyType = keyType
        self.dataType = dataType
        self.isInterval = isInterval
    }

    init(_ set: NamedSet) {
        self.init(keyType: set.keyType, dataType: set.dataType, isInterval: set.flags.contains(.interval))
    }

    var isConcatenation: Bool { keyType.count > 1 }
    /// Concatenated interval sets (the kernel's pipapo backend) store each range as key + key end.
    var usesKeyEnd: Bool { isInterval && isConcatenation }
    /// Single-field interval sets (rbtree) store a range as a start and an end element.
    var usesEndElements: Bool { isInterval && !isConcatenation }
    /// Bytes of the key: each component of a concatenation is padded to 4 bytes.
    var keyLength: Int { isConcatenation ? keyType.reduce(0) { $0 + $1.paddedWidth } : keyType.first?.width ?? 0 }
}

/// Where each key component sits in a key as the kernel stores it, for sets whose components
/// are all in network order (their bytes are then the model's bytes); nil otherwise.
struct RawLayout {
    /// Bytes of each component.
    var widths: [Int]
    /// Offset of each component in the kernel's key (concatenations pad each to 4 bytes).
    var offsets: [Int]

    init?(_ shape: SetShape) {
        guard !shape.keyType.isEmpty, shape.keyType.allSatisfy({ $0.isBigEndian && $0.width > 0 && $0.width <= 16 }) else { return nil }
        widths = shape.keyType.map(\.width)
        var o = 0
        offsets = []
        for t in shape.keyType {
            offsets.append(o)
            o += shape.isConcatenation ? t.paddedWidth : t.width
        }
    }
}

/// A set element as the kernel stores it.
struct KernelElement: Hashable, Sendable {
    /// One value per key component.
    var key: [Value]
    /// The range's upper end, per component (concatenated interval sets only).
    var keyEnd: [Value]?
    /// `NFT_SET_ELEM_INTERVAL_END`: this element closes the interval opened before it.
    var isIntervalEnd = false
    /// nft's element user data flag for an interval that runs to the largest value, which has
    /// no end element; `nft list` reads it to print such a range correctly.
    var isOpenInterval = false
    var data: ElementData?
}

/// Converts between the model's ranges and the kernel's element representation, exactly as
/// nft 1.0.6 does:
///
/// - single-field interval sets: `lo…hi` becomes a start element `lo` and an end element
///   `hi+1` flagged `INTERVAL_END`; a range ending at the largest value has no end element and
///   carries the "open interval" user data flag instead. When elements are added to a set
///   created in the same batch and the first range does not start at zero, nft first adds an
///   end element at zero (its "first segment"); decoding ignores it.
/// - concatenated interval sets: one element with `key` = the low ends and `key_end` = the high ends.
/// - other sets: one element per key.
enum SetElementCodec {
    /// One kernel element as it is produced from a model element, without copying keys.
    struct Part {
        enum Kind { case start, end, whole, zeroEnd }
        var kind: Kind
        var element: SetElement
    }

    /// Calls `body` for every kernel element of `elements`, in order.
    ///
    /// `firstSegment`: the set was created in this batch, so nft's end element at zero comes first.
    static func forEachPart(of elements: ElementList, shape: SetShape, adding: Bool, firstSegment: Bool,
                            _ body: (Part) -> Void) {
        guard shape.usesEndElements else {
            for e in elements { body(Part(kind: .whole, element: e)) }
            return
        }
        let lowest = elements.isSortedByKey ? elements.first : elements.min()
        if adding, firstSegment, let first = lowest, first.key[0].lo.uint128 != 0 {
            body(Part(kind: .zeroEnd, element: first))
        }
        for e in elements {
            body(Part(kind: .start, element: e))
            if e.key[0].hi != .max(width: e.key[0].hi.width) { body(Part(kind: .end, element: e)) }
        }
    }

    /// One kernel element of `forEachRawPart`: the element's bytes in its list (each key
    /// component's low end, then its high end) instead of a rebuilt `SetElement`.
    struct RawPart {
        var kind: Part.Kind
        /// The element's index in its list, and its bytes there.
        var index: Int
        var bytes: UnsafePointer<UInt8>
        var data: ElementData?
        /// The data's slot in its list's `DataColumn` (equal slots, equal data); -1 without data.
        var dataSlot: Int = -1
    }

    /// `forEachPart` without building a `SetElement` per element, in the same order, for sets
    /// whose key components are all in network order (`layout`) and laid out as in `elements`.
    /// Returns false, without calling `body`, where it does not apply: `forEachPart` then does.
    static func forEachRawPart(of elements: ElementList, shape: SetShape, layout: RawLayout, adding: Bool, firstSegment: Bool,
                               _ body: (RawPart) -> Void) -> Bool {
        guard elements.componentWidths == layout.widths else { return elements.isEmpty }
        let zeroEnd = shape.usesEndElements && adding && firstSegment
        guard !shape.usesEndElements || (layout.widths.count == 1 && (!zeroEnd || elements.isSortedByKey)) else { return false }
        let stride = layout.widths.reduce(0, +) * 2
        elements.withStorage { keys, data in
            guard let base = keys.baseAddress else { return }
            func part(_ kind: Part.Kind, _ i: Int) -> RawPart {
                data.isEmpty ? RawPart(kind: kind, index: i, bytes: base + i * stride, data: nil)
                    : RawPart(kind: kind, index: i, bytes: base + i * stride, data: data[i], dataSlot: data.slot(i))
            }
            guard shape.usesEndElements else {
                for i in 0..<elements.count { body(part(.whole, i)) }
                return
            }
            let w = layout.widths[0]
            if zeroEnd, !UnsafeBufferPointer(start: base, count: w).allSatisfy({ $0 == 0 }) { body(part(.zeroEnd, 0)) }
            for i in 0..<elements.count {
                body(part(.start, i))
                if !UnsafeBufferPointer(start: base + i * stride + w, count: w).allSatisfy({ $0 == 0xff }) { body(part(.end, i)) }
            }
        }
        return true
    }

    /// The kernel element a part stands for (tests and error messages use this; the batch
    /// encoder writes parts directly).
    static func kernelElement(_ p: Part, shape: SetShape) -> KernelElement {
        let r = p.element.key
        switch p.kind {
        case .zeroEnd:
            return KernelElement(key: [Value(high: 0, low: 0, width: r[0].lo.width)], isIntervalEnd: true)
        case .start:
            return KernelElement(key: [r[0].lo], isOpenInterval: r[0].hi == .max(width: r[0].hi.width), data: p.element.data)
        case .end:
            return KernelElement(key: [r[0].hi.successor!], isIntervalEnd: true)
        case .whole:
            return KernelElement(key: r.map(\.lo), keyEnd: shape.usesKeyEnd ? r.map(\.hi) : nil, data: p.element.data)
        }
    }

    /// The kernel elements for `elements`.
    static func kernelElements(_ elements: ElementList, shape: SetShape, adding: Bool = true,
                               firstSegment: Bool = false) -> [KernelElement] {
        var out: [KernelElement] = []
        forEachPart(of: elements, shape: shape, adding: adding, firstSegment: firstSegment) {
            out.append(kernelElement($0, shape: shape))
        }
        return out
    }

    /// The model's elements from the kernel's, sorted. Orphan end elements (nft's first
    /// segment, or leftovers of deleted ranges) are dropped; they match nothing.
    static func elements(from kernel: [KernelElement], shape: SetShape) -> ElementList {
        var collector = ElementCollector(shape: shape)
        for k in kernel { collector.add(k) }
        return collector.finish()
    }
}

/// Turns a dump's kernel elements into model elements as they arrive, without keeping them
/// all as `KernelElement`s (two arrays each): a 100,000-range map is 200,000 kernel elements.
/// Whole elements go straight into an `ElementList`; the start and end elements of a
/// single-field interval set are kept as inline edges until they can be paired.
struct ElementCollector {
    let shape: SetShape
    private var list = ElementList()
    /// Start and end elements of a single-field interval set: 24 bytes each.
    private var edges: [Edge] = []
    private var width = 0
    /// The distinct map data of the edges (a verdict map jumps to far fewer chains than it has
    /// ranges), and each one's index.
    private var data: [ElementData] = []
    private var dataIndex: [ElementData: UInt32] = [:]
    /// The slot of each distinct raw `NFTA_SET_ELEM_DATA` read directly, and the last one: a
    /// map's elements are read without decoding (and hashing) the same verdict again for each.
    private var rawIndex: [[UInt8]: UInt32] = [:]
    private var lastRaw: (bytes: [UInt8], slot: UInt32)?

    private struct Edge {
        var high: UInt64
        var low: UInt64
        /// Index into `data` plus one, 0 for none; the top bit marks an end element.
        var tag: UInt32

        static let endBit: UInt32 = 1 << 31
        var isEnd: Bool { tag & Self.endBit != 0 }
        var dataSlot: UInt32 { tag & ~Self.endBit }
        static func < (a: Edge, b: Edge) -> Bool {
            // Ascending by key; at equal keys the end of one range comes before the start of the next.
            a.high != b.high ? a.high < b.high : a.low != b.low ? a.low < b.low : (a.isEnd && !b.isEnd)
        }
    }

    init(shape: SetShape) { self.shape = shape }

    mutating func add(_ k: KernelElement) {
        guard let first = k.key.first else { return }
        if shape.usesEndElements {
            // Map data belongs to starts; a start of a map always has some (the decoder keeps
            // even a verdict it cannot name), and data on a plain set's element is ignored.
            let slot = !k.isIntervalEnd && shape.dataType != nil ? self.slot(of: k.data ?? Self.missingDatum) : 0
            addEdge(first, isEnd: k.isIntervalEnd, slot: slot)
        } else {
            // An element that does not fit the set's declaration cannot come from the kernel,
            // which checks lengths; should one appear, it is left out (the set then differs from
            // the desired one, which a reconciler repairs) rather than trusted.
            let ends = k.keyEnd ?? k.key
            guard k.key.count == shape.keyType.count, ends.count == k.key.count,
                  zip(k.key, shape.keyType).allSatisfy({ $0.width == $1.width }),
                  (k.data != nil) == (shape.dataType != nil) else { return }
            list.append(SetElement(key: zip(k.key, ends).map { ValueRange(min($0, $1), max($0, $1)) }, data: k.data))
        }
    }

    private mutating func slot(of d: ElementData) -> UInt32 {
        if let i = dataIndex[d] { return i }
        data.append(d)
        dataIndex[d] = UInt32(data.count)
        return UInt32(data.count)
    }

    private mutating func addEdge(_ key: Value, isEnd: Bool, slot: UInt32) {
        width = key.width
        edges.append(Edge(high: key.high, low: key.low, tag: slot | (isEnd ? Edge.endBit : 0)))
    }

    /// Adds the elements of one dump message, returning how many had no key (as
    /// `TableDecoder.kernelElements`). The large sets of a table are read straight from the
    /// message, without a `KernelElement` (and `SetElement`) per element: a concatenated interval
    /// set of network-order types into the list, a single-field interval set or map into edges,
    /// each distinct map datum decoded once. Anything else goes through `add(_:)`.
    mutating func add(elementsOf m: NetlinkMessage, _ decoder: TableDecoder) -> Int {
        if decoder.elementPath == .direct, shape.usesEndElements {
            return addEdges(elementsOf: m)
        }
        guard decoder.elementPath == .direct, shape.usesKeyEnd, shape.dataType == nil, let layout = RawLayout(shape) else {
            return decoder.kernelElements(m, shape: shape) { add($0) }
        }
        var keyless = 0
        guard let elements = m.attributes[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested else { return 0 }
        for elem in elements {
            var key: ArraySlice<UInt8>?, keyEnd: ArraySlice<UInt8>?, hasData = false
            for attr in elem.nested {
                switch attr.type {
                case NFTA_SET_ELEM_KEY.u16: key = attr.nested[NFTA_DATA_VALUE.u16]?.payload
                case NFTA_SET_ELEM_KEY_END.u16: keyEnd = attr.nested[NFTA_DATA_VALUE.u16]?.payload
                case NFTA_SET_ELEM_DATA.u16: hasData = true
                default: break
                }
            }
            guard let key, !key.isEmpty else { keyless += 1; continue }
            // Data on an element of a plain set cannot come from the kernel; as in `add(_:)`, it is left out.
            if hasData { continue }
            _ = list.appendConcatenated(key: key, keyEnd: keyEnd ?? key, widths: layout.widths, offsets: layout.offsets, data: nil)
        }
        return keyless
    }

    /// `add(elementsOf:)` for a single-field interval set or map: what `kernelElementsDirectly`
    /// and `add(_:)` make of each element, from its attributes in place.
    private mutating func addEdges(elementsOf m: NetlinkMessage) -> Int {
        let bigEndian = shape.keyType.first?.isBigEndian ?? true
        let isMap = shape.dataType != nil
        // Borrowed attributes: a dump of 100,000 elements is half a million attributes.
        return m.withBorrowedAttributes { top in
            guard let elements = top[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested else { return 0 }
            var keyless = 0
            for elem in elements {
                var key: UnsafeRawBufferPointer?, isEnd = false, datum: BorrowedAttribute?
                for attr in elem.nested {
                    switch attr.type {
                    case NFTA_SET_ELEM_KEY.u16: key = attr.nested[NFTA_DATA_VALUE.u16]?.payload
                    case NFTA_SET_ELEM_FLAGS.u16: isEnd = attr.u32 & NFT_SET_ELEM_INTERVAL_END.u32 != 0
                    case NFTA_SET_ELEM_DATA.u16: datum = attr
                    default: break
                    }
                }
                // An empty value cannot come from the kernel; in a damaged message it is no key at all.
                guard let key, !key.isEmpty else { keyless += 1; continue }
                let slot = isMap && !isEnd ? self.slot(ofRaw: datum) : 0
                addEdge(TableDecoder.value(key.prefix(16), bigEndian: bigEndian), isEnd: isEnd, slot: slot)
            }
            return keyless
        }
    }

    /// The slot of a map start's raw data: the previous element's when the bytes are the same,
    /// else decoded once per distinct bytes.
    private mutating func slot(ofRaw datum: BorrowedAttribute?) -> UInt32 {
        guard let datum else { return slot(of: Self.missingDatum) }
        if let last = lastRaw, last.bytes.elementsEqual(datum.payload) { return last.slot }
        let bytes = [UInt8](datum.payload)
        let slot: UInt32
        if let known = rawIndex[bytes] {
            slot = known
        } else {
            slot = self.slot(of: TableDecoder.elementData(bytes, rawType: datum.rawType, shape) ?? Self.missingDatum)
            rawIndex[bytes] = slot
        }
        lastRaw = (bytes, slot)
        return slot
    }

    /// What a map start without data (or with data no decoder names) holds: a value equal to no
    /// desired element's.
    private static let missingDatum = ElementData.value(Value(0, width: 4))

    /// Sorts `edges` ascending. The kernel's interval tree dumps its elements from the highest
    /// key down, so when the edges come strictly descending they are reversed in one pass; with
    /// no two equal, that is the only ascending order. Any other arrival order is sorted.
    private mutating func sortEdges() {
        let descending = edges.indices.dropFirst().allSatisfy { edges[$0] < edges[$0 - 1] }
        if descending { edges.reverse() } else { edges.sort(by: <) }
    }

    /// The elements in canonical order.
    mutating func finish() -> ElementList {
        guard shape.usesEndElements else { return list.sortedByKey() }
        sortEdges()
        var out = ElementList()
        // A map's data are its distinct values, each element refers to one by index: nothing
        // is hashed or compared per element.
        let isMap = shape.dataType != nil
        if isMap { out.startData(with: data) }
        func value(_ e: Edge) -> Value { Value(high: e.high, low: e.low, width: width) }
        func append(_ start: Edge, upTo hi: Value) {
            let slot = start.dataSlot
            if isMap {
                out.appendRange(value(start), hi, dataSlot: slot - 1)
            } else {
                out.appendRange(value(start), hi)
            }
        }
        var open: Edge?
        for e in edges {
            if e.isEnd {
                guard let s = open else { continue }
                if let hi = value(e).predecessor, hi >= value(s) { append(s, upTo: hi) }
                open = nil
            } else {
                // Two starts in a row: the first range runs up to the second.
                if let s = open, let hi = value(e).predecessor, hi >= value(s) { append(s, upTo: hi) }
                open = e
            }
        }
        if let s = open { append(s, upTo: .max(width: width)) }
        edges = []
        return out
    }
}

extension SetElementCodec {
    /// Appends a value's `width` bytes, in network order or (for host-order types such as
    /// `ct state`) little endian: how keys, key ends and map data are stored.
    static func appendBytes(_ v: Value, bigEndian: Bool, to out: inout [UInt8]) {
        func byte(_ i: Int) -> UInt8 {
            i < 8 ? UInt8(truncatingIfNeeded: v.low >> UInt64(i * 8)) : UInt8(truncatingIfNeeded: v.high >> UInt64((i - 8) * 8))
        }
        if bigEndian {
            for i in stride(from: v.width - 1, through: 0, by: -1) { out.append(byte(i)) }
        } else {
            for i in 0..<v.width { out.append(byte(i)) }
        }
    }
}
