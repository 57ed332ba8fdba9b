import CNetfilter
import Ruleset

/// The elements `NetlinkKernel.holds` asks the kernel for by key, and how it checks the
/// replies: each reply must be the element asked for, key, flags and data.
///
/// One kind of element is not asked for: the end of a range that the next range starts right
/// after, which the kernel's lookup cannot find (see `holds`).
protocol ElementLookup: Sendable {
    /// How many kernel elements are asked for.
    var count: Int { get }
    /// Appends the element nests of elements `range` to the request at `m`.
    func write(_ range: Range<Int>, toMessageAt m: Int, _ w: inout NetlinkWriter)
    /// Whether `replies` hold exactly elements `range`, in order.
    func matches(_ range: Range<Int>, _ replies: [NetlinkMessage]) -> Bool
}

/// Lookups built from each element's bytes, for sets of network-order key types: no
/// `SetElement` or `KernelElement` per element (a stage's 100,000-range map is 200,000 lookups).
struct RawElementLookup: ElementLookup {
    let elements: ElementList
    let shape: SetShape
    let layout: RawLayout
    /// The elements asked for: a kind and the element's index in `elements`.
    let parts: [(kind: SetElementCodec.Part.Kind, index: Int)]
    private let stride: Int

    init?(_ elements: ElementList, of set: NamedSet, shape: SetShape) {
        guard let layout = RawLayout(shape), elements.componentWidths == layout.widths,
              set.elements.isEmpty || set.elements.componentWidths == layout.widths else { return nil }
        self.elements = elements
        self.shape = shape
        self.layout = layout
        stride = layout.widths.reduce(0, +) * 2
        var parts: [(kind: SetElementCodec.Part.Kind, index: Int)] = []
        parts.reserveCapacity(elements.count * (shape.usesEndElements ? 2 : 1))
        let w = layout.widths[0], s = stride
        set.elements.withStorage { keys, _ in
            var startsAfter = StartIndex(keys: keys.baseAddress, count: set.elements.count, stride: s, width: w,
                                         hash: shape.usesEndElements && !set.elements.isSortedByKey)
            _ = SetElementCodec.forEachRawPart(of: elements, shape: shape, layout: layout, adding: false, firstSegment: false) { part in
                if part.kind == .end, startsAfter.contains(Self.number(part.bytes + w, w) &+ 1) { return }
                parts.append((part.kind, part.index))
            }
        }
        self.parts = parts
    }

    /// Whether some element of the whole set starts at a key. With the set in key order (as
    /// compiled) a cursor walks its starts: the ends asked about grow, so it walks them once (a
    /// smaller key than the last sends it back to the first). Otherwise the starts are hashed.
    private struct StartIndex {
        let keys: UnsafePointer<UInt8>?  // nil only when the set is empty
        let count: Int, stride: Int, width: Int
        var cursor = 0
        var last: UInt128 = 0
        var hashed: Set<UInt128>?

        init(keys: UnsafePointer<UInt8>?, count: Int, stride: Int, width: Int, hash: Bool) {
            (self.keys, self.count, self.stride, self.width) = (keys, count, stride, width)
            if hash {
                var starts = Set<UInt128>(minimumCapacity: count)
                for i in 0..<count { starts.insert(RawElementLookup.number(keys! + i * stride, width)) }
                hashed = starts
            }
        }

        mutating func contains(_ key: UInt128) -> Bool {
            if let hashed { return hashed.contains(key) }
            if key < last { cursor = 0 }
            last = key
            while cursor < count, RawElementLookup.number(keys! + cursor * stride, width) < key { cursor += 1 }
            return cursor < count && RawElementLookup.number(keys! + cursor * stride, width) == key
        }
    }

    /// The big-endian number of `width` bytes (at most 16) at `p`.
    static func number(_ p: UnsafePointer<UInt8>, _ width: Int) -> UInt128 {
        var v: UInt128 = 0
        for k in 0..<width { v = v << 8 | UInt128(p[k]) }
        return v
    }

    var count: Int { parts.count }

    func write(_ range: Range<Int>, toMessageAt m: Int, _ w: inout NetlinkWriter) {
        elements.withStorage { keys, _ in
            for (n, p) in parts[range].enumerated() {
                let e = w.beginNest(UInt16(truncatingIfNeeded: n + 1) & 0x3fff)
                BatchEncoder.putElement(SetElementCodec.RawPart(kind: p.kind, index: p.index, bytes: keys.baseAddress! + p.index * stride, data: nil),
                                        layout: layout, shape: shape, adding: false, &w)
                w.endNest(e)
            }
        }
    }

    func matches(_ range: Range<Int>, _ replies: [NetlinkMessage]) -> Bool {
        var next = range.lowerBound
        // A map's elements share a few data, which arrive in runs: each run is decoded once.
        var lastDatum: (bytes: [UInt8], data: ElementData?)?
        return elements.withStorage { keys, data in
            for m in replies {
                // Borrowed attributes: a reply of 1,000s of elements is 1,000s of attributes.
                let holds = m.withBorrowedAttributes { top -> Bool in
                    guard let list = top[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested else { return true }
                    for elem in list {
                        guard next < range.upperBound else { return false }
                        let p = parts[next]
                        guard matches(elem.nested, p.kind, keys.baseAddress! + p.index * stride,
                                      data: p.kind == .end || data.isEmpty ? nil : data[p.index], lastDatum: &lastDatum) else { return false }
                        next += 1
                    }
                    return true
                }
                guard holds else { return false }
            }
            return next == range.upperBound
        }
    }

    /// Whether one reply element is the element at `bytes` as `kind`.
    private func matches(_ attrs: BorrowedAttributes, _ kind: SetElementCodec.Part.Kind, _ bytes: UnsafePointer<UInt8>,
                         data: ElementData?, lastDatum: inout (bytes: [UInt8], data: ElementData?)?) -> Bool {
        var key: UnsafeRawBufferPointer?, keyEnd: UnsafeRawBufferPointer?, isEnd = false, got: ElementData?
        for attr in attrs {
            switch attr.type {
            case NFTA_SET_ELEM_KEY.u16: key = attr.nested[NFTA_DATA_VALUE.u16]?.payload
            case NFTA_SET_ELEM_KEY_END.u16: keyEnd = attr.nested[NFTA_DATA_VALUE.u16]?.payload
            case NFTA_SET_ELEM_FLAGS.u16: isEnd = attr.u32 & NFT_SET_ELEM_INTERVAL_END.u32 != 0
            case NFTA_SET_ELEM_DATA.u16:
                if let last = lastDatum, last.bytes.elementsEqual(attr.payload) {
                    got = last.data
                } else {
                    let raw = [UInt8](attr.payload)
                    got = TableDecoder.elementData(raw, rawType: attr.rawType, shape)
                    lastDatum = (raw, got)
                }
            default: break
            }
        }
        guard let key, isEnd == (kind == .end), got == data else { return false }
        if kind == .end {
            let w = layout.widths[0]
            return key.count == w && Self.number(bytes + w, w) &+ 1 == Self.number(key.baseAddress!.assumingMemoryBound(to: UInt8.self), w)
        }
        guard same(key, bytes, highEnds: false) else { return false }
        guard shape.usesKeyEnd else { return keyEnd == nil }
        return keyEnd.map { same($0, bytes, highEnds: true) } ?? false
    }

    /// Whether a key as the kernel stores it holds each component's low (or high) end.
    private func same(_ stored: UnsafeRawBufferPointer, _ bytes: UnsafePointer<UInt8>, highEnds: Bool) -> Bool {
        guard stored.count == shape.keyLength else { return false }
        var offset = 0
        for (width, at) in zip(layout.widths, layout.offsets) {
            let want = bytes + offset + (highEnds ? width : 0)
            for k in 0..<width where stored[at + k] != want[k] { return false }
            offset += 2 * width
        }
        return true
    }
}

/// Lookups built from model elements (`SetElementCodec.forEachPart`), for any set.
struct ModelElementLookup: ElementLookup {
    let shape: SetShape
    let parts: [SetElementCodec.Part]
    let decoder: TableDecoder

    init(_ elements: ElementList, of set: NamedSet, shape: SetShape, decoder: TableDecoder) {
        self.shape = shape
        self.decoder = decoder
        let starts: Set<Value> = shape.usesEndElements ? Set(set.elements.lazy.map { $0.key[0].lo }) : []
        var asking: [SetElementCodec.Part] = []
        asking.reserveCapacity(elements.count * (shape.usesEndElements ? 2 : 1))
        SetElementCodec.forEachPart(of: elements, shape: shape, adding: false, firstSegment: false) { part in
            if part.kind == .end, let next = part.element.key[0].hi.successor, starts.contains(next) { return }
            asking.append(part)
        }
        parts = asking
    }

    var count: Int { parts.count }

    func write(_ range: Range<Int>, toMessageAt m: Int, _ w: inout NetlinkWriter) {
        var scratch: [UInt8] = []
        for (i, part) in parts[range].enumerated() {
            BatchEncoder.appendElement(part, shape: shape, adding: false, number: i + 1, toMessageAt: m, &w, scratch: &scratch)
        }
    }

    func matches(_ range: Range<Int>, _ replies: [NetlinkMessage]) -> Bool {
        var got: [KernelElement] = []
        got.reserveCapacity(range.count)
        for m in replies { decoder.kernelElements(m, shape: shape) { got.append($0) } }
        return got.count == range.count && zip(parts[range], got).allSatisfy { part, element in
            var want = SetElementCodec.kernelElement(part, shape: shape)
            want.isOpenInterval = false  // user data, which the decoders do not read
            return want == element
        }
    }
}
