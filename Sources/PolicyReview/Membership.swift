import ZonePolicy

/// A range of addresses of one family, first to last inclusive.
public struct AddressRange: Hashable, Sendable, Comparable {
    /// IPv4 or IPv6.
    public var family: AddressFamily
    /// The first address (IPv4 in the low 32 bits).
    public var first: UInt128
    /// The last address, inclusive.
    public var last: UInt128

    public static func < (a: Self, b: Self) -> Bool { (a.family, a.first, a.last) < (b.family, b.first, b.last) }

    /// The fewest prefixes that cover exactly this range, in order.
    public var prefixes: [IPPrefix] {
        var out: [IPPrefix] = []
        var start = first
        let bits = family.bits
        while true {
            // The largest aligned block at `start` that does not pass `last`.
            var size = start == 0 ? bits : min(bits, start.trailingZeroBitCount)
            while size > 0 {
                let span: UInt128 = size == 128 ? .max : (UInt128(1) << UInt128(size)) - 1
                let (end, overflow) = start.addingReportingOverflow(span)
                if !overflow && end <= last { break }
                size -= 1
            }
            out.append(IPPrefix(family: family, address: start, length: bits - size))
            let span: UInt128 = size == 128 ? .max : (UInt128(1) << UInt128(size)) - 1
            let end = start + span
            if end >= last { return out }
            start = end + 1
        }
    }
}

/// Which addresses each zone really holds once longest-prefix-wins is applied: a /32 listed in
/// `db` inside a /24 of `cache` belongs to `db`, and `cache` holds the /24 without it.
///
/// Listing the same addresses differently (two /25s for a /24) gives the same value.
public struct Membership: Sendable {
    /// Each zone's addresses as sorted, disjoint, merged ranges.
    public private(set) var ranges: [String: [AddressRange]] = [:]

    /// Each zone's addresses in `policy`.
    public init(_ policy: Policy) {
        for family in AddressFamily.allCases {
            var members: [(prefix: IPPrefix, zone: String)] = []
            for z in policy.zones {
                for m in z.members where m.value.family == family { members.append((m.value.normalized, z.name)) }
            }
            // Outer prefixes before the ones nested in them.
            members.sort { ($0.prefix.first, $0.prefix.length) < ($1.prefix.first, $1.prefix.length) }
            // A prefix listed twice in a zone is a warning, in two zones an error: keep one.
            var unique: [(prefix: IPPrefix, zone: String)] = []
            unique.reserveCapacity(members.count)
            for m in members where unique.last?.prefix != m.prefix { unique.append(m) }
            sweep(unique, family: family)
        }
        for (z, rs) in ranges { ranges[z] = Self.merged(rs) }
    }

    /// Prefixes nest or are disjoint: walk them in order with a stack of the enclosing ones,
    /// giving each address to the innermost prefix that holds it.
    private mutating func sweep(_ members: [(prefix: IPPrefix, zone: String)], family: AddressFamily) {
        var stack: [(last: UInt128, zone: String)] = []
        // The next address not yet given out; nil once the end of the address space is passed.
        var cursor: UInt128? = 0
        func emit(to last: UInt128, zone: String) {
            guard let c = cursor, c <= last else { return }
            ranges[zone, default: []].append(AddressRange(family: family, first: c, last: last))
            cursor = last == .max ? nil : last + 1
        }
        for (p, zone) in members {
            while let top = stack.last, top.last < p.first {
                emit(to: top.last, zone: top.zone)
                stack.removeLast()
            }
            if let top = stack.last, p.first > 0 { emit(to: p.first - 1, zone: top.zone) }
            cursor = p.first
            stack.append((p.last, zone))
        }
        while let top = stack.popLast() { emit(to: top.last, zone: top.zone) }
    }

    static func merged(_ rs: [AddressRange]) -> [AddressRange] {
        var out: [AddressRange] = []
        for r in rs.sorted() {
            if let l = out.last, l.family == r.family, l.last != .max, l.last + 1 >= r.first {
                out[out.count - 1].last = max(l.last, r.last)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// The ranges in `a` and not in `b` (both sorted, disjoint): one pass over both.
    static func subtract(_ a: [AddressRange], _ b: [AddressRange]) -> [AddressRange] {
        var out: [AddressRange] = []
        var j = 0
        for r in a {
            while j < b.count, (b[j].family, b[j].last) < (r.family, r.first) { j += 1 }
            var lo: UInt128? = r.first
            var k = j
            while let l = lo, k < b.count, b[k].family == r.family, b[k].first <= r.last {
                let s = b[k]
                if s.first > l { out.append(AddressRange(family: r.family, first: l, last: s.first - 1)) }
                if s.last >= r.last { lo = nil } else { lo = max(l, s.last + 1) }
                k += 1
            }
            if let l = lo { out.append(AddressRange(family: r.family, first: l, last: r.last)) }
        }
        return out
    }

    /// Addresses whose owner differs between two memberships: `was` and `now` are zone names,
    /// nil for no zone (`world`).
    public struct Move: Sendable, Hashable {
        public var was: String?
        public var now: String?
        public var ranges: [AddressRange]
    }

    /// The addresses that changed owner from `old` to `new`, grouped by (was, now), sorted.
    public static func moves(from old: Membership, to new: Membership) -> [Move] {
        pieces(from: old, to: new, unchanged: false)
    }

    /// Every address some zone owns on either side, grouped by (was, now), sorted; with
    /// `unchanged`, the addresses that kept their zone too (`was == now`).
    public static func pieces(from old: Membership, to new: Membership, unchanged: Bool) -> [Move] {
        // Every boundary of either side's ranges, then each piece between them with its two owners.
        func owners(_ m: Membership) -> [(AddressRange, String)] {
            m.ranges.flatMap { zone, rs in rs.map { ($0, zone) } }.sorted { $0.0 < $1.0 }
        }
        let a = owners(old), b = owners(new)
        var byPair: [[String?]: [AddressRange]] = [:]
        for family in AddressFamily.allCases {
            let fa = a.filter { $0.0.family == family }, fb = b.filter { $0.0.family == family }
            var cuts = Set<UInt128>()
            for (r, _) in fa + fb {
                cuts.insert(r.first)
                if r.last != .max { cuts.insert(r.last + 1) }
            }
            let points = cuts.sorted()
            func owner(_ list: [(AddressRange, String)], at x: UInt128) -> String? {
                // The ranges are disjoint and sorted: the last one starting at or before x.
                var lo = 0, hi = list.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if list[mid].0.first <= x { lo = mid + 1 } else { hi = mid }
                }
                guard lo > 0, list[lo - 1].0.last >= x else { return nil }
                return list[lo - 1].1
            }
            for (k, start) in points.enumerated() {
                let was = owner(fa, at: start), now = owner(fb, at: start)
                guard was != now || (unchanged && was != nil) else { continue }
                let last = k + 1 < points.count ? points[k + 1] - 1 : UInt128.max >> (128 - family.bits)
                byPair[[was, now], default: []].append(AddressRange(family: family, first: start, last: last))
            }
        }
        // Every group holds at least one range.
        return byPair.map { Move(was: $0.key[0], now: $0.key[1], ranges: merged($0.value)) }.sorted { $0.ranges[0] < $1.ranges[0] }
    }

    /// The identities a zone admits, written as `explain` endpoints (`unit:NAME`,
    /// `cgroup:/PATH`, `user:NAME`, `iface:NAME`): the diff, the report and the lint use them.
    public static func identities(of zone: Zone) -> [String] {
        zone.units.map { "unit:\($0.value)" } + zone.cgroups.map { "cgroup:\($0.value)" }
            + zone.users.map { "user:\($0.value)" } + zone.interfaces.map { "iface:\($0.value)" }
    }
}
