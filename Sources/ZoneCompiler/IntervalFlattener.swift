import ZonePolicy

/// A run of addresses `lo...hi` that classifies into one zone.
struct LabeledInterval: Hashable {
    var lo: UInt128
    var hi: UInt128
    /// Index of the zone in the policy's sorted zone list.
    var zone: Int
}

/// Turns nested, overlapping member prefixes into disjoint intervals with longest-prefix-wins
/// labels: the kernel refuses overlapping intervals, so the nesting must be resolved here.
enum IntervalFlattener {
    /// Disjoint intervals, sorted, adjacent runs of the same zone merged.
    ///
    /// Prefixes form a laminar family (two prefixes are nested or disjoint), so one sweep with a
    /// stack of open prefixes gives each address the innermost prefix that contains it.
    static func flatten(_ members: [(prefix: IPPrefix, zone: Int)]) -> [LabeledInterval] {
        flatten(ranges: members.map { (first: $0.prefix.first, last: $0.prefix.last, zone: $0.zone) })
    }

    /// `flatten` for any laminar family of ranges (interface wildcards are one too).
    static func flatten(ranges: [(first: UInt128, last: UInt128, zone: Int)]) -> [LabeledInterval] {
        var items = ranges
        // Outer prefixes first when two start at the same address.
        items.sort { $0.first != $1.first ? $0.first < $1.first : $0.last > $1.last }

        var out: [LabeledInterval] = []
        func emit(_ lo: UInt128, _ hi: UInt128, _ zone: Int) {
            if let last = out.last, last.zone == zone, last.hi &+ 1 == lo, last.hi != .max {
                out[out.count - 1].hi = hi
            } else {
                out.append(LabeledInterval(lo: lo, hi: hi, zone: zone))
            }
        }

        var stack: [(last: UInt128, zone: Int)] = []
        var cursor: UInt128 = 0       // first address not yet emitted
        var finished = false          // cursor ran past the top of the address space

        func closeTop() {
            let top = stack.removeLast()
            if !finished && cursor <= top.last { emit(cursor, top.last, top.zone) }
            if top.last == .max { finished = true } else if !finished { cursor = Swift.max(cursor, top.last + 1) }
        }

        for item in items {
            if let prev = stack.last, prev.last == item.last, prev.zone == item.zone, cursor == item.first { continue }
            while let top = stack.last, top.last < item.first { closeTop() }
            if let top = stack.last, !finished, cursor < item.first { emit(cursor, item.first - 1, top.zone) }
            if !finished { cursor = Swift.max(cursor, item.first) }
            stack.append((item.last, item.zone))
        }
        while !stack.isEmpty { closeTop() }
        return out
    }

    /// The union of intervals, adjacent runs merged.
    static func union(_ intervals: [LabeledInterval]) -> [ClosedRange<UInt128>] {
        var out: [ClosedRange<UInt128>] = []
        forEachUnion(of: intervals) { out.append($0) }
        return out
    }

    /// Calls `body` with each run of the union of `intervals` (sorted, disjoint), in order,
    /// adjacent runs merged: what `union` returns, without an array of it. At 100,000 members
    /// that array is 3 MB, which a daemon's reload held on top of the lists it was filling.
    static func forEachUnion(of intervals: [LabeledInterval], _ body: (ClosedRange<UInt128>) -> Void) {
        var run: ClosedRange<UInt128>?
        for i in intervals {
            if let r = run, r.upperBound != .max, r.upperBound + 1 >= i.lo {
                run = r.lowerBound...Swift.max(r.upperBound, i.hi)
            } else {
                if let r = run { body(r) }
                run = i.lo...i.hi
            }
        }
        if let r = run { body(r) }
    }
}
