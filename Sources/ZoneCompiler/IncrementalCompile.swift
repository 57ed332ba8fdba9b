import Ruleset
import ZonePolicy

/// A compiled policy, with what the next compile of an edited policy can reuse.
///
/// A daemon recompiles on every policy edit and every etcd event. At 10,000 zones a whole
/// compile flattens 100,000 member prefixes and builds every zone's lookup; when only some
/// zones' members changed, `ZoneCompiler.compile(_:host:after:)` recomputes just the address
/// ranges those members cover, the lookups that point into them, and the address maps, and
/// gives exactly the table a whole compile gives (checked on random edits by the tests).
public struct CompiledPolicy: Sendable {
    /// The compiled table.
    public let table: Table
    /// The policy it was compiled from.
    public let policy: Policy
    /// What the table was assembled from; nil when the policy has identity zones, whose part
    /// of the table is always compiled whole.
    let parts: CompiledParts?

    /// How the last compile went: whole, or only the zones whose members changed.
    public let kind: CompileKind
}

/// Whether a compile started from scratch or from the previous compile.
public enum CompileKind: Sendable, Equatable, CustomStringConvertible {
    case whole
    /// `zones` zones' members changed; `lookups` zone lookups were rebuilt.
    case incremental(zones: Int, lookups: Int)

    public var description: String {
        switch self {
        case .whole: "whole"
        case .incremental(let zones, let lookups): "incremental (\(zones) zones' members, \(lookups) lookups rebuilt)"
        }
    }
}

/// The zone-to-zone and edge rules, indexed by zone.
struct RuleIndex: Sendable {
    /// Source zone → its destinations, in rule order.
    var outgoing: [Int: [(to: Int, ports: [PortSpec])]] = [:]
    /// Destination zone → the zones with a rule towards it.
    var inbound: [Int: Set<Int>] = [:]
    /// What each zone's rules with the world or this host admit, by site and zone, normalised:
    /// the admissions the world and host maps send each zone's intervals to.
    var edgeAdmissions: [TableBuilder.EdgeSite: [Int: Admits]] = [:]
    /// The zones of `edgeAdmissions`.
    var edgeZones: Set<Int> = []
    /// `admissions(from:)` of every zone in `outgoing`, made for a whole compile and dropped
    /// after it (`dropAdmitted`).
    private(set) var admitted: [Int: [Int: Admits]] = [:]

    init(_ policy: Policy, zoneIndex: [String: Int]) {
        for rule in policy.rules {
            for from in rule.from {
                for to in rule.to {
                    switch (from, to) {
                    case (.zone(let a), .zone(let b)):
                        let (ia, ib) = (zoneIndex[a]!, zoneIndex[b]!)
                        outgoing[ia, default: []].append((ib, rule.ports))
                        inbound[ib, default: []].insert(ia)
                    case (.zone(let a), .world), (.zone(let a), .host):
                        addEdge(to == .world ? .toWorld : .toHost, zoneIndex[a]!, rule.ports)
                    case (.world, .zone(let b)), (.host, .zone(let b)):
                        addEdge(from == .world ? .fromWorld : .fromHost, zoneIndex[b]!, rule.ports)
                    default:
                        break  // world/host ↔ world/host is not governed
                    }
                }
            }
        }
        edgeAdmissions = edgeAdmissions.mapValues { $0.mapValues(\.normalized) }
        // Each zone's admissions are wanted three times (the ports chains, then the zone's map in
        // each family): made once, on every CPU, in runs of zones.
        let outgoing = self.outgoing
        for run in concurrentMap(runs(of: Array(outgoing.keys), size: 256), { run in
            run.map { zone in (zone, Self.admissions(of: outgoing[zone] ?? [])) }
        }) {
            for (zone, admits) in run { admitted[zone] = admits }
        }
    }

    private mutating func addEdge(_ site: TableBuilder.EdgeSite, _ zone: Int, _ ports: [PortSpec]) {
        for spec in ports { edgeAdmissions[site, default: [:]][zone, default: Admits()].add(spec) }
        edgeZones.insert(zone)
    }
}

extension RuleIndex {

    /// What zone `zone`'s rules admit towards each destination zone, normalised: the
    /// admissions that name the ports chains and that a zone's map sends each destination to.
    func admissions(from zone: Int) -> [Int: Admits] {
        admitted[zone] ?? Self.admissions(of: outgoing[zone] ?? [])
    }

    /// Drops the admissions made for a whole compile. The parts are kept between edits (a daemon
    /// holds them), where these would cost megabytes at 10,000 zones; an edit rebuilds a few
    /// zones' maps and makes their admissions again.
    mutating func dropAdmitted() { admitted = [:] }

    static func admissions(of destinations: [(to: Int, ports: [PortSpec])]) -> [Int: Admits] {
        var pairs: [Int: Admits] = [:]
        for (b, specs) in destinations { for spec in specs { pairs[b, default: Admits()].add(spec) } }
        return pairs.mapValues(\.normalized)
    }
}

/// One address family's share of a compiled table.
struct FamilyParts: Sendable {
    /// Every member of the family, flattened: disjoint, sorted, longest prefix deciding.
    var flat: [LabeledInterval]
    /// `flat` by zone; rebuilt whenever `flat` changes.
    var byZone = ZoneIntervals()

    /// Zone `zone`'s intervals of the family, in address order; nil when it has none.
    func intervals(of zone: Int) -> [ClosedRange<UInt128>]? { byZone.intervals(of: zone, in: flat) }
    /// The zones' verdict maps (`z_ZONE_v4`), by zone; a zone without one has no rule of this family.
    var zoneSets: [Int: NamedSet] = [:]
    /// `to_world`, `to_host`, `from_world`, `from_host`.
    var edgeSets: [NamedSet] = []
    var src = NamedSet(name: "", keyType: [])
    var srcAddress = NamedSet(name: "", keyType: [])
    var zoned = NamedSet(name: "", keyType: [])
    var audit = NamedSet(name: "", keyType: [])
}

/// A family's flattened intervals grouped by zone: their indices in `flat`, sorted by zone
/// (a counting sort, stable, so each zone's in address order), 4 bytes an interval. An array
/// per zone took 5 MB at 10,000 zones, held for as long as the compile is.
struct ZoneIntervals: Sendable {
    /// `order[start[z] ..< start[z + 1]]` are zone `z`'s intervals.
    private var start: [Int32] = []
    private var order: [Int32] = []

    init() {}

    init(_ flat: [LabeledInterval], zones: Int) {
        var start = [Int32](repeating: 0, count: zones + 1)
        for iv in flat { start[iv.zone + 1] += 1 }
        for z in 0..<zones { start[z + 1] += start[z] }
        var next = start
        var order = [Int32](repeating: 0, count: flat.count)
        for (i, iv) in flat.enumerated() {
            order[Int(next[iv.zone])] = Int32(i)
            next[iv.zone] += 1
        }
        self.start = start
        self.order = order
    }

    func contains(_ zone: Int) -> Bool { zone + 1 < start.count && start[zone] < start[zone + 1] }

    func intervals(of zone: Int, in flat: [LabeledInterval]) -> [ClosedRange<UInt128>]? {
        guard contains(zone) else { return nil }
        return order[Int(start[zone]) ..< Int(start[zone + 1])].map { flat[Int($0)].lo...flat[Int($0)].hi }
    }
}

/// What a table is assembled from (`TableBuilder.assemble`).
struct CompiledParts: Sendable {
    var families: [FamilyParts]
    var index: RuleIndex
    /// The ports chains the zone maps send to.
    var ports: PortChains
    var zoneChains: [Chain] = []
    /// Zone name → index in the policy's zones, which a member edit leaves as they are.
    var zoneIndex: [String: Int] = [:]
}

extension ZoneCompiler {
    /// Compiles `policy`, starting from `previous` (the compile of the policy before an edit)
    /// when only zones' members changed: the result is the table a whole compile gives, but
    /// only the address ranges of the added and removed members are flattened again, and only
    /// the lookups of the zones whose intervals changed, or that have a rule towards one, are
    /// rebuilt. Any other change (rules, settings, zones added or removed, identity zones) is
    /// compiled whole, sharing element storage with `previous` where sets come out the same.
    ///
    /// `previous` is consumed: when the caller hands over its last reference, the parts an edit
    /// rebuilds (a family's flattened intervals, 5 MB at 100,000 members) are freed as soon as
    /// their replacement is made, before the address maps are filled, not held beside them.
    public static func compile(_ policy: Policy, host: HostFacts = HostFacts(), after previous: consuming CompiledPolicy?) -> CompiledPolicy {
        if let before = previous?.policy, previous?.parts != nil, let changed = MemberEdit.zones(from: before, to: policy) {
            let previousTable = previous!.table
            var parts = previous!.parts!
            previous = nil  // `parts` is now the only reference to them
            // The zones have the same names in the same order: their index is the previous one.
            var builder = TableBuilder(policy: policy, zoneIndex: parts.zoneIndex)
            builder.host = host
            let (lookups, chainsMoved) = builder.update(&parts, changedZones: changed, before: before)
            // Chains depend on the rules, the settings and which zones have a map: when no zone
            // gained or lost one, they are the previous table's, storage and all.
            let chains = chainsMoved ? builder.chains(parts, previous: previousTable) : previousTable.chains
            return CompiledPolicy(table: builder.assemble(parts, chains: chains), policy: policy, parts: parts,
                                  kind: .incremental(zones: changed.count, lookups: lookups))
        }
        var builder = TableBuilder(policy: policy)
        builder.host = host
        if let previous {
            builder.previous = Dictionary(previous.table.sets.map { ($0.name, $0.elements) }, uniquingKeysWith: { a, _ in a })
            builder.previousRules = Dictionary(previous.table.chains.map { ($0.name, $0.rules) }, uniquingKeysWith: { a, _ in a })
        }
        if IdentityCompiler(policy: policy, host: host, zoneChains: []).hasIdentities {
            return CompiledPolicy(table: builder.build(), policy: policy, parts: nil, kind: .whole)
        }
        let parts = builder.makeParts()
        return CompiledPolicy(table: builder.assemble(parts), policy: policy, parts: parts, kind: .whole)
    }
}

/// Whether two policies differ in zones' members only.
enum MemberEdit {
    /// The indices of the zones whose members differ, when nothing else that the compiler
    /// reads differs (zone names and order, audit flags, rules' endpoints and ports, settings,
    /// no identity zones); nil otherwise. Source locations and descriptions are ignored.
    static func zones(from old: Policy, to new: Policy) -> [Int]? {
        guard old.zones.count == new.zones.count, old.rules.count == new.rules.count,
              sameSettings(old.settings, new.settings) else { return nil }
        // Read in place: copying 10,000 zones out of their arrays (a retain per field) cost
        // more than comparing them.
        let zones: [Int]? = old.zones.withUnsafeBufferPointer { a in
            new.zones.withUnsafeBufferPointer { b in
                for i in a.indices {
                    guard a[i].name == b[i].name, a[i].audit == b[i].audit, !a[i].isLocal, !b[i].isLocal,
                          a[i].interfaces.isEmpty, b[i].interfaces.isEmpty else { return nil }
                }
                return a.indices.filter { !sameValues(a[$0].members, b[$0].members) }
            }
        }
        guard let changed = zones else { return nil }
        let sameRules = old.rules.withUnsafeBufferPointer { a in
            new.rules.withUnsafeBufferPointer { b in
                a.indices.allSatisfy { a[$0].from == b[$0].from && a[$0].to == b[$0].to && a[$0].ports == b[$0].ports }
            }
        }
        guard sameRules else { return nil }
        return changed
    }

    static func sameValues(_ a: [Located<IPPrefix>], _ b: [Located<IPPrefix>]) -> Bool {
        guard a.count == b.count else { return false }
        // A zone the edit did not touch usually keeps its array's storage (its file's parse
        // is cached): nothing to compare then.
        return a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                pa.baseAddress == pb.baseAddress || pa.indices.allSatisfy { pa[$0].value == pb[$0].value }
            }
        }
    }

    static func sameSettings(_ a: Settings, _ b: Settings) -> Bool {
        var (a, b) = (a, b)
        a.location = nil; b.location = nil
        a.ctMarkBitsLocation = nil; b.ctMarkBitsLocation = nil
        return a == b
    }
}

extension TableBuilder {
    /// Brings `parts`, compiled from `before`, up to this builder's policy, which differs from
    /// it only in the members of `changedZones`. Returns how many zone lookups were rebuilt, and
    /// whether a zone gained or lost its map (its chain changed).
    func update(_ parts: inout CompiledParts, changedZones: [Int], before: Policy) -> (lookups: Int, chainsMoved: Bool) {
        var rebuilt = 0
        var chainsMoved = false
        for (fi, f) in FamilyInfo.all.enumerated() {
            // The ranges of the members added or removed: labels change only inside them.
            var ranges: [ClosedRange<UInt128>] = []
            for zone in changedZones {
                let old = Set(before.zones[zone].members.lazy.map(\.value).filter { $0.family == f.family })
                let new = Set(policy.zones[zone].members.lazy.map(\.value).filter { $0.family == f.family })
                for p in old.symmetricDifference(new) { ranges.append(p.first...p.last) }
            }
            guard !ranges.isEmpty else { continue }
            // Taken out of `parts`, so that its dictionaries are changed in place, not copied.
            var family = parts.families[fi]
            parts.families[fi] = FamilyParts(flat: [])
            let (oldEdges, oldSrc, oldSrcAddress, oldZoned, oldAudit) = (family.edgeSets, family.src, family.srcAddress, family.zoned, family.audit)
            let touched = reflatten(&family, changed: Merge.ranges(ranges), f)

            // The lookups that read the touched zones' intervals: their own, and every zone's
            // with a rule towards one of them.
            var sources = touched
            for zone in touched { sources.formUnion(parts.index.inbound[zone] ?? []) }
            for zone in sources.sorted() {
                let set = zoneSet(zone, f, family, parts.index, parts.ports)
                if (set == nil) != (family.zoneSets[zone] == nil) { chainsMoved = true }
                family.zoneSets[zone] = set.map { Self.keepingStorage($0, of: family.zoneSets[zone]) }
                rebuilt += 1
            }
            if !touched.isDisjoint(with: parts.index.edgeZones) {
                family.edgeSets = zip(edgeSets(f, family, parts.index), oldEdges).map { Self.keepingStorage($0, of: $1) }
            }
            fillAddressMaps(f, &family)
            family.src = Self.keepingStorage(family.src, of: oldSrc)
            family.srcAddress = Self.keepingStorage(family.srcAddress, of: oldSrcAddress)
            family.zoned = Self.keepingStorage(family.zoned, of: oldZoned)
            family.audit = Self.keepingStorage(family.audit, of: oldAudit)
            parts.families[fi] = family
        }
        if chainsMoved {
            var builder = self
            builder.previousRules = Dictionary(parts.zoneChains.map { ($0.name, $0.rules) }, uniquingKeysWith: { a, _ in a })
            parts.zoneChains = builder.zoneChains(parts)
        }
        return (rebuilt, chainsMoved)
    }

    /// `set`, holding `old`'s element storage when the elements are the same.
    static func keepingStorage(_ set: NamedSet, of old: NamedSet?) -> NamedSet {
        guard let old, old.elements == set.elements else { return set }
        var s = set
        s.elements = old.elements
        return s
    }

    /// Flattens the policy's members again inside `changed` (sorted, disjoint ranges), splices
    /// the result into `family.flat` (and its `byZone`). Returns the zones whose intervals may
    /// differ.
    func reflatten(_ family: inout FamilyParts, changed: [ClosedRange<UInt128>], _ f: FamilyInfo) -> Set<Int> {
        let old = family.flat
        // Widen each range to whole old intervals, so that no old interval is cut in two.
        var regions: [ClosedRange<UInt128>] = []
        for r in changed {
            var lo = r.lowerBound, hi = r.upperBound
            let first = old.partitioningIndex { $0.hi >= lo }
            if first < old.count, old[first].lo < lo { lo = old[first].lo }
            let last = old.partitioningIndex { $0.lo > hi } - 1
            if last >= 0, old[last].hi > hi { hi = old[last].hi }
            regions.append(lo...hi)
        }
        regions = Merge.ranges(regions)

        // Every member of the family that reaches into a region: the innermost prefix covering
        // an address there is one of them.
        // Every member is visited: read in place, without copying a zone or a member (and
        // retaining its strings) per visit.
        var reaching = [[(first: UInt128, last: UInt128, zone: Int)]](repeating: [], count: regions.count)
        policy.zones.withUnsafeBufferPointer { zones in
            for zone in zones.indices {
                zones[zone].members.withUnsafeBufferPointer { members in
                    for i in members.indices where members[i].value.family == f.family {
                        let (a, b) = (members[i].value.first, members[i].value.last)
                        var k = regions.partitioningIndex { $0.upperBound >= a }
                        while k < regions.count, regions[k].lowerBound <= b {
                            reaching[k].append((a, b, zone))
                            k += 1
                        }
                    }
                }
            }
        }

        var out: [LabeledInterval] = []
        out.reserveCapacity(old.count + 16)
        func push(_ iv: LabeledInterval) {
            if let last = out.last, last.zone == iv.zone, last.hi != .max, last.hi &+ 1 == iv.lo {
                out[out.count - 1].hi = iv.hi
            } else {
                out.append(iv)
            }
        }
        var touched = Set<Int>()
        var cursor = 0
        for (k, region) in regions.enumerated() {
            while cursor < old.count, old[cursor].hi < region.lowerBound { push(old[cursor]); cursor += 1 }
            while cursor < old.count, old[cursor].lo <= region.upperBound { touched.insert(old[cursor].zone); cursor += 1 }
            for iv in IntervalFlattener.flatten(ranges: reaching[k]) {
                let lo = max(iv.lo, region.lowerBound), hi = min(iv.hi, region.upperBound)
                guard lo <= hi else { continue }
                touched.insert(iv.zone)
                push(LabeledInterval(lo: lo, hi: hi, zone: iv.zone))
            }
        }
        while cursor < old.count { push(old[cursor]); cursor += 1 }
        family.flat = out

        family.byZone = ZoneIntervals(out, zones: policy.zones.count)
        return touched
    }
}
