import Ruleset
import ZonePolicy

/// Compiles a policy into the `table inet zonewall` rule set. Pure and deterministic.
///
/// Shape (per address family; `_v6` twins of every `_v4` object):
/// - `zoned_v4`: every member address; a packet with neither end in it is not governed.
/// - `src_v4`: source interval map → `jump z_ZONE`, longest prefix wins (intervals are flattened);
///   `src_addr_v4`: the same for the flattened intervals of a single address, hashed (constant
///   lookup), which `src_v4` leaves out.
/// - `z_ZONE` chains, one per zone with zone-to-zone rules, holding one rule per family: the
///   destination looked up in the zone's verdict map `z_ZONE_v4` (an interval map, flattened),
///   which sends the packet to the shared chain of what the zone's rules admit towards that
///   destination's zone.
/// - `ports_…` chains, one per distinct admission (the normalised port specs of the rules from
///   one zone to another, or between a zone and the world or this host), shared by every map of
///   both families. At most `Admits.inlineLimit` rules, each a protocol and a port range (`any`
///   and ICMP echo included); the ports of a longer admission are one lookup of `meta l4proto .
///   th sport . th dport` in a set of the same name. A zone therefore costs one set per family
///   it sends in, whatever the mix of ports, `icmp` and `any` in its rules, and none of them is
///   a concatenated interval set: those (pipapo) cost the kernel pages of lookup tables per set.
/// - `to_world_v4`, `to_host_v4` (keyed by the zoned source) and `from_world_v4`, `from_host_v4`
///   (keyed by the zoned destination): interval maps like the zones' own, each zone's intervals
///   → `jump` to the ports chain of what its rules with the world or this host admit there.
/// - base chains `input`, `forward`, `output` with identical logic, differing only in what an
///   address outside every zone means there.
/// - `audit_v4`: the flattened member intervals of the zones in audit mode. The base chains'
///   deny tail looks a packet's source and destination up in it and sends a hit to the `audit`
///   chain (log, accept) instead of `deny`: turning audit on or off for a zone is an element
///   change, and a packet pays the lookups only when it is about to be denied.
///
/// No chain grows with the number of zones, members or rules: the per-packet cost is a fixed
/// number of set lookups and at most `Admits.inlineLimit` rules of a ports chain. Membership
/// and rule edits become element changes, or additions of sets, chains and rules (see
/// `Transaction.diff`) when a zone gains its first rule or its first destination of a family.
public enum ZoneCompiler {
    /// The table's family and name.
    public static let family = Family.inet
    public static let tableName = "zonewall"
    /// Start of the prefix in the kernel log (`log_to: kernel`): "zonewall denied ", "zonewall audit ".
    public static let logPrefix = "zonewall "
    /// NFLOG prefix of denied packets.
    public static let deniedPrefix = "denied"
    /// NFLOG prefix of audited packets (denied by the policy, passed because of audit mode).
    public static let auditPrefix = "audit"

    public static func compile(_ policy: Policy) -> Table {
        var builder = TableBuilder(policy: policy)
        return builder.build()
    }

    /// `compile(policy)` with the identity zones' units, cgroups and users resolved as in `host`.
    public static func compile(_ policy: Policy, host: HostFacts) -> Table {
        var builder = TableBuilder(policy: policy)
        builder.host = host
        return builder.build()
    }

    /// `compile(policy)`, sharing element storage with `previous` (the table compiled before)
    /// wherever a set comes out with the same elements. The result is the same table; a
    /// daemon reloading a large policy then holds one copy of the unchanged sets, not two,
    /// and comparing such a set with its previous version is immediate.
    /// `previous`, compiled from `policy` with other host facts, as `compile(policy, host: host)`
    /// would make it, by replacing only the sets that depend on host facts (`cg_*`, `uid_out`);
    /// nil when more than those sets would change (a cgroup level with no map yet, or one
    /// left without cgroups). A cgroup appearing or vanishing then costs no whole compile.
    public static func recompileHostMaps(_ previous: Table, policy: Policy, host: HostFacts) -> Table? {
        let maps = IdentityCompiler(policy: policy, host: host, zoneChains: []).hostMaps()
        let old = previous.sets.enumerated().filter { $0.element.name.hasPrefix("cg_") || $0.element.name == "uid_out" }
        guard old.map(\.element.name) == maps.map(\.name) else { return nil }
        var table = previous
        for ((index, _), set) in zip(old, maps) { table.sets[index] = set }
        return table
    }

    public static func compile(_ policy: Policy, reusing previous: Table?, host: HostFacts = HostFacts()) -> Table {
        var builder = TableBuilder(policy: policy)
        builder.host = host
        if let previous {
            builder.previous = Dictionary(previous.sets.map { ($0.name, $0.elements) }, uniquingKeysWith: { a, _ in a })
            builder.previousRules = Dictionary(previous.chains.map { ($0.name, $0.rules) }, uniquingKeysWith: { a, _ in a })
        }
        return builder.build()
    }
}

/// What port specs admit towards one address interval, as ranges of the lookup key's
/// `meta l4proto . th sport . th dport`. Normalised so that no two of its keys overlap: the
/// kernel refuses an element whose ends fall inside another element.
struct Admits: Hashable {
    /// `any`: every protocol and both ports; subsumes everything else.
    var any = false
    /// `icmp`: echo request.
    var echo = false
    /// Destination port ranges by protocol number; a whole protocol is 0-65535.
    var ports: [UInt8: [ClosedRange<UInt16>]] = [:]

    mutating func add(_ spec: PortSpec) {
        switch spec {
        case .any: any = true
        case .icmpEcho: echo = true
        case .wholeProtocol(let p): ports[p.number, default: []].append(0...65535)
        case .ports(let p, let r): ports[p.number, default: []].append(r)
        }
    }

    /// The same admissions with overlapping port ranges joined and `any` alone when present.
    var normalized: Admits {
        if any { return Admits(any: true) }
        var out = Admits(echo: echo)
        for (p, rs) in ports { out.ports[p] = Merge.ranges(rs) }
        return out
    }

    static let allPortsKey = ValueRange(Value(0, width: 2), Value(65535, width: 2))

    /// The port keys (`meta l4proto . th sport . th dport`), echo and `any` aside.
    var portKeys: [[ValueRange]] {
        ports.sorted(by: { $0.key < $1.key }).flatMap { p, rs in
            rs.map { r in [ValueRange(Value(UInt64(p), width: 1)), Self.allPortsKey,
                           ValueRange(Value(UInt64(r.lowerBound), width: 2), Value(UInt64(r.upperBound), width: 2))] }
        }
    }
}

/// The ports chain of an admission: its name, and the rules that accept what it admits. A
/// chain serves both families: a zone map of either sends to it.
extension Admits {
    /// The most rules a ports chain holds inline; the ports of a longer admission are one set
    /// lookup, so that a new flow's cost stays bounded whatever the rules say.
    static let inlineLimit = 6

    /// Port rules an inline chain of this (normalised) admission holds; echo adds one per family.
    var portRuleCount: Int { any ? 1 : ports.values.reduce(0) { $0 + $1.count } }
    var isInline: Bool { portRuleCount + (echo ? 2 : 0) <= Self.inlineLimit }

    /// `ports_tcp.443_udp.53-60_icmp`, `ports_any`: what the chain admits, readable in `nft list`.
    /// A name longer than 64 characters keeps a readable start and ends in a 128-bit hash of
    /// the whole (the kernel allows 256 bytes).
    var chainName: String {
        var parts: [String] = []
        if any {
            parts = ["any"]
        } else {
            for (p, rs) in ports.sorted(by: { $0.key < $1.key }) {
                let proto = Self.protocolNames[p] ?? "p\(p)"
                for r in rs {
                    if r == 0...65535 { parts.append(proto) }
                    else if r.lowerBound == r.upperBound { parts.append("\(proto).\(r.lowerBound)") }
                    else { parts.append("\(proto).\(r.lowerBound)-\(r.upperBound)") }
                }
            }
            if echo { parts.append("icmp") }
        }
        let name = "ports_" + parts.joined(separator: "_")
        guard name.utf8.count > 64 else { return name }
        return String(name.prefix(30)) + "_" + Self.hash128(name)
    }

    static let protocolNames: [UInt8: String] = [6: "tcp", 17: "udp", 132: "sctp"]

    /// Two independent FNV-1a 64-bit hashes, as 32 hex digits.
    static func hash128(_ s: String) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x6c62_272e_07bb_0142
        for byte in s.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_0129
        }
        func hex(_ v: UInt64) -> String {
            let digits = String(v, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return hex(a) + hex(b)
    }

    static let allPorts = Comparison.inRange(Value(0, width: 2), Value(65535, width: 2))

    /// The port rules, written out: each matches what one key of the set form would, the `th`
    /// loads included (a packet whose transport header cannot be read matches neither).
    var portRules: [Rule] {
        if any { return [Rule([.match(.thDport, Self.allPorts), .verdict(.accept)])] }
        var rules: [Rule] = []
        for (p, rs) in ports.sorted(by: { $0.key < $1.key }) {
            for r in rs {
                let port: Comparison = r.lowerBound == r.upperBound
                    ? .equal(Value(UInt64(r.lowerBound), width: 2))
                    : .inRange(Value(UInt64(r.lowerBound), width: 2), Value(UInt64(r.upperBound), width: 2))
                rules.append(Rule([.match(.l4proto, .equal(Value(UInt64(p), width: 1))), .match(.thDport, port), .verdict(.accept)]))
            }
        }
        return rules
    }

    /// ICMP echo request, any code, in each family: `th sport` is the ICMP type and code.
    var echoRules: [Rule] {
        guard echo, !any else { return [] }
        return FamilyInfo.all.map { f in
            let t = UInt64(f.echoType) << 8
            return Rule([.match(.nfproto, .equal(Value(UInt64(f.family == .ipv4 ? 2 : 10), width: 1))),
                         .match(.l4proto, .equal(Value(UInt64(f.icmpProtocol), width: 1))),
                         .match(.thSport, .inRange(Value(t, width: 2), Value(t | 0xff, width: 2))),
                         .match(.thDport, Self.allPorts), .verdict(.accept)])
        }
    }
}

/// Per-family names and selectors.
struct FamilyInfo {
    let family: AddressFamily
    var tag: String { family == .ipv4 ? "v4" : "v6" }
    /// The family's place in `all`, and in every per-family array.
    var index: Int { family == .ipv4 ? 0 : 1 }
    var addressType: DataType { family == .ipv4 ? .ipv4Address : .ipv6Address }
    var width: Int { family == .ipv4 ? 4 : 16 }
    var saddr: Selector { family == .ipv4 ? .ipSaddr : .ip6Saddr }
    var daddr: Selector { family == .ipv4 ? .ipDaddr : .ip6Daddr }
    var icmpProtocol: UInt8 { family == .ipv4 ? 1 : 58 }
    var echoType: UInt8 { family == .ipv4 ? 8 : 128 }
    /// `icmp type echo-request` (or its ICMPv6 twin), for rules written out inline.
    var echo: Expression {
        family == .ipv4 ? .match(.icmpType, .equal(Value(8, width: 1))) : .match(.icmpv6Type, .equal(Value(128, width: 1)))
    }
    static let all = [FamilyInfo(family: .ipv4), FamilyInfo(family: .ipv6)]

    func value(_ a: UInt128) -> Value { Value(a, width: width) }
    func range(_ lo: UInt128, _ hi: UInt128) -> ValueRange { ValueRange(value(lo), value(hi)) }
}

/// The ports chains of a policy: one per distinct admission of a zone-to-zone rule pair, named
/// by what it admits and shared by both families. They depend on the rules only, never on
/// members, so a membership edit never adds or removes one.
struct PortChains: Sendable {
    /// Admission → the `goto` of its chain.
    var targets: [Admits: ElementData] = [:]
    var chains: [Chain] = []
    /// The port sets of the admissions too long to write out inline.
    var sets: [NamedSet] = []

    static let setKeyTypes: [DataType] = [.inetProtocol, .inetService, .inetService]

    init() {}

    init(_ index: RuleIndex) {
        var all = Set<Admits>()
        for pairs in index.admitted.values { all.formUnion(pairs.values) }
        for site in index.edgeAdmissions.values { all.formUnion(site.values) }
        for (name, a) in all.map({ ($0.chainName, $0) }).sorted(by: { $0.0 < $1.0 }) {
            targets[a] = .verdict(.goto(name))
            if a.isInline {
                chains.append(Chain(name: name, rules: a.portRules + a.echoRules))
            } else {
                sets.append(NamedSet(name: name, keyType: Self.setKeyTypes, flags: .interval, elements: ElementList(a.portKeys.map { SetElement(key: $0) })))
                let lookup = Rule([.lookup(TableBuilder.flowSelectors, set: name, negated: false), .verdict(.accept)])
                chains.append(Chain(name: name, rules: [lookup] + a.echoRules))
            }
        }
    }
}

enum Merge {
    /// Sorted, overlapping or adjacent ranges joined (ports, addresses).
    static func ranges<T: FixedWidthInteger & UnsignedInteger>(_ rs: [ClosedRange<T>]) -> [ClosedRange<T>] {
        var out: [ClosedRange<T>] = []
        for r in rs.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, last.upperBound == .max || last.upperBound + 1 >= r.lowerBound {
                out[out.count - 1] = last.lowerBound...Swift.max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }
}

struct TableBuilder {
    let policy: Policy
    let zoneIndex: [String: Int]
    /// Element lists of the previously compiled table, by set name (`compile(_:reusing:)`).
    var previous: [String: ElementList] = [:]
    /// Rules of the previously compiled table, by chain name.
    var previousRules: [String: [Rule]] = [:]
    /// What identity zones resolve to on this host.
    var host = HostFacts()

    init(policy: Policy) {
        self.init(policy: policy, zoneIndex: Dictionary(uniqueKeysWithValues: policy.zones.enumerated().map { ($1.name, $0) }))
    }

    /// With the zone index of a policy whose zones have the same names in the same order.
    init(policy: Policy, zoneIndex: [String: Int]) {
        self.policy = policy
        self.zoneIndex = zoneIndex
    }

    /// The four sites where a zone meets the world or this host.
    enum EdgeSite: String, CaseIterable {
        case toWorld = "to_world", toHost = "to_host", fromWorld = "from_world", fromHost = "from_host"
        /// Whether the set is keyed by the packet's source (the zoned end is the source).
        var keyedBySource: Bool { self == .toWorld || self == .toHost }
    }

    /// The lookup key's selectors after the address.
    static let flowSelectors: [Selector] = [.l4proto, .thSport, .thDport]

    mutating func build() -> Table {
        let parts = makeParts()
        var table = assemble(parts)
        let policy = self.policy
        IdentityCompiler(policy: policy, host: host, zoneChains: Set(parts.zoneChains.map(\.name))).extend(&table) { f in
            parts.families[f.index].flat
        }
        for i in table.chains.indices {
            if let old = previousRules[table.chains[i].name], old == table.chains[i].rules { table.chains[i].rules = old }
        }
        return table
    }

    /// Everything the table is assembled from, computed from scratch.
    func makeParts() -> CompiledParts {
        let index = RuleIndex(policy, zoneIndex: zoneIndex)
        let ports = PortChains(index)
        var families: [FamilyParts] = []
        for f in FamilyInfo.all {
            // Scratch is scoped so that it is freed as soon as it is used: at 100,000 members each
            // of these arrays takes a few MB, and a daemon compiles while holding its previous table.
            var parts = FamilyParts(flat: IntervalFlattener.flatten(policy.zones.enumerated().flatMap { i, z in
                z.members.filter { $0.value.family == f.family }.map { (prefix: $0.value, zone: i) }
            }))
            parts.byZone = ZoneIntervals(parts.flat, zones: policy.zones.count)
            // One set per source zone, and only when the zone has members of this family: without
            // them no packet of the family is ever sent to its chain.
            // Each zone's map depends only on what is computed above: made on every CPU, in runs
            // of zones (10,000 zones' maps are a third of a cold compile).
            let family = parts
            let made = concurrentMap(runs(of: index.outgoing.keys.sorted(), size: 256)) { run in
                run.compactMap { zone in zoneSet(zone, f, family, index, ports).map { (zone, $0) } }
            }
            for (zone, set) in made.joined() { parts.zoneSets[zone] = set }
            parts.edgeSets = edgeSets(f, parts, index)
            fillAddressMaps(f, &parts)
            families.append(parts)
        }
        var parts = CompiledParts(families: families, index: index, ports: ports, zoneIndex: zoneIndex)
        parts.zoneChains = zoneChains(parts)
        parts.index.dropAdmitted()
        return parts
    }

    /// The table: fixed chains built afresh, everything else from `parts`. Chains whose rules
    /// come out as in the previous table keep its storage, so comparing them is immediate.
    func assemble(_ parts: CompiledParts, previous: Table? = nil) -> Table {
        assemble(parts, chains: chains(parts, previous: previous))
    }

    /// The table of `parts`' sets and of `chains`.
    func assemble(_ parts: CompiledParts, chains: [Chain]) -> Table {
        Table(family: ZoneCompiler.family, name: ZoneCompiler.tableName, chains: chains, sets: sets(parts))
    }

    /// The table's sets, in declaration order.
    func sets(_ parts: CompiledParts) -> [NamedSet] {
        var sets: [NamedSet] = []
        sets.reserveCapacity(parts.families.reduce(0) { $0 + $1.zoneSets.count + $1.edgeSets.count + 4 } + parts.ports.sets.count)
        sets += parts.families.map(\.zoned)
        sets += parts.families.flatMap(\.edgeSets)
        for family in parts.families { sets += family.zoneSets.keys.sorted().map { family.zoneSets[$0]! } }
        sets += parts.ports.sets
        sets += parts.families.flatMap { [$0.srcAddress, $0.src] }
        sets += parts.families.map(\.audit)
        return sets
    }

    /// The table's chains: the fixed ones built afresh, the zones' and the ports chains from `parts`.
    func chains(_ parts: CompiledParts, previous: Table?) -> [Chain] {
        var chains = [denyChain(), auditChain(), invalidChain()] + parts.zoneChains + parts.ports.chains
        chains += [Hook.input, .forward, .output].map(baseChain)
        // The fixed chains: the first three and the last three.
        for i in [0, 1, 2] + Array(chains.count - 3 ..< chains.count) {
            if let old = previousRules[chains[i].name], old == chains[i].rules { chains[i].rules = old }
            if let previous, previous.chains.count == chains.count, previous.chains[i].name == chains[i].name,
               previous.chains[i].rules == chains[i].rules {
                chains[i].rules = previous.chains[i].rules
            }
        }
        return chains
    }

    /// The zone chains: one per zone with a lookup in either family, its v4 rule first.
    func zoneChains(_ parts: CompiledParts) -> [Chain] {
        let zones = Set(parts.families.flatMap(\.zoneSets.keys)).sorted()
        return zones.map { zone in
            var rules: [Rule] = []
            for (f, family) in zip(FamilyInfo.all, parts.families) where family.zoneSets[zone] != nil {
                rules.append(Rule([.verdictMap([f.daddr], map: "z_\(policy.zones[zone].name)_\(f.tag)")]))
            }
            let name = "z_\(policy.zones[zone].name)"
            if let old = previousRules[name], old == rules { return Chain(name: name, rules: old) }
            return Chain(name: name, rules: rules)
        }
    }

    /// Zone `zone`'s verdict map in family `f`: each destination zone's intervals → the ports
    /// chain of what the zone's rules admit towards it. Nil when the zone admits nothing, or has
    /// no members of the family and no identity (an interface or a local process sends in
    /// either family, whatever its addresses).
    func zoneSet(_ zone: Int, _ f: FamilyInfo, _ parts: FamilyParts, _ index: RuleIndex, _ ports: PortChains) -> NamedSet? {
        let z = policy.zones[zone]
        guard parts.byZone.contains(zone) || z.isLocal || !z.interfaces.isEmpty, index.outgoing[zone] != nil else { return nil }
        // Flattened intervals belong to one zone each, so an interval's admission is that of the
        // rules towards its zone: computed once per destination zone, not per interval.
        var runs: [(lo: UInt128, hi: UInt128, data: ElementData)] = []
        for (b, admits) in index.admissions(from: zone) {
            guard let dst = parts.intervals(of: b) else { continue }
            let data = ports.targets[admits] ?? .verdict(.goto(admits.chainName))
            for iv in dst { runs.append((iv.lowerBound, iv.upperBound, data)) }
        }
        guard !runs.isEmpty else { return nil }
        // Adjacent intervals that go to the same chain are one element.
        return reusing(NamedSet(name: "z_\(policy.zones[zone].name)_\(f.tag)", keyType: [f.addressType], dataType: .verdict,
                                flags: .interval, elements: Self.intervalMap(runs, f)))
    }

    /// The world and host maps of family `f`: each zone's intervals → `jump` to the ports chain
    /// of what the zone's rules with the world (or this host) at that site admit. A `jump`, not
    /// a `goto`: they are looked up in the base chains, which go on to their next rule when the
    /// ports chain admits nothing. Interval maps keyed by the address alone (an rbtree), like the
    /// zones' maps: an element added or removed when a member moves costs a tree update, where a
    /// concatenated interval set (pipapo) searched and cut bitmaps of the whole set.
    func edgeSets(_ f: FamilyInfo, _ parts: FamilyParts, _ index: RuleIndex) -> [NamedSet] {
        EdgeSite.allCases.map { site in
            var runs: [(lo: UInt128, hi: UInt128, data: ElementData)] = []
            for (zone, admits) in index.edgeAdmissions[site] ?? [:] {
                guard let intervals = parts.intervals(of: zone) else { continue }
                let data = ElementData.verdict(.jump(admits.chainName))
                for iv in intervals { runs.append((iv.lowerBound, iv.upperBound, data)) }
            }
            return reusing(NamedSet(name: "\(site.rawValue)_\(f.tag)", keyType: [f.addressType], dataType: .verdict,
                                    flags: .interval, elements: Self.intervalMap(runs, f)))
        }
    }

    /// An interval map's elements from disjoint runs, in address order, adjacent runs with the
    /// same data joined.
    static func intervalMap(_ unsorted: [(lo: UInt128, hi: UInt128, data: ElementData)], _ f: FamilyInfo) -> ElementList {
        let runs = unsorted.sorted { $0.lo < $1.lo }
        var elements = ElementList()
        elements.reserveCapacity(ranges: runs.count, width: f.width, data: true)
        var i = 0
        while i < runs.count {
            var j = i
            while j + 1 < runs.count, runs[j].hi != .max, runs[j].hi + 1 == runs[j + 1].lo, runs[j + 1].data == runs[i].data { j += 1 }
            elements.appendRange(f.value(runs[i].lo), f.value(runs[j].hi), data: runs[i].data)
            i = j + 1
        }
        elements.shareData()
        return elements
    }

    /// `src_*`, `zoned_*` and `audit_*` of family `f`, from its flattened intervals and the
    /// zones that have a lookup: linear passes that write elements straight into their lists.
    func fillAddressMaps(_ f: FamilyInfo, _ parts: inout FamilyParts) {
        // Single addresses (most members) go to a hashed map, whose lookup is constant; the
        // interval map keeps the rest, with a gap at each single address, so that a source is
        // found in exactly one of the two.
        // By zone index: a dictionary lookup per interval would cost more than the rest.
        var jumps = [ElementData?](repeating: nil, count: policy.zones.count)
        for zone in parts.zoneSets.keys { jumps[zone] = .verdict(.jump("z_\(policy.zones[zone].name)")) }
        // Both lists are reserved exactly: the daemon holds them for as long as the policy.
        // A zone's jump is stored once per list, not once per address (3 MB at 100,000
        // addresses): each list's distinct jumps are gathered first, in order of first use, and
        // its elements refer to them by slot.
        var singles = 0, ranges = 0
        var singleSlot = [UInt32](repeating: .max, count: policy.zones.count), rangeSlot = singleSlot
        var singleJumps: [ElementData] = [], rangeJumps: [ElementData] = []
        for iv in parts.flat {
            guard let jump = jumps[iv.zone] else { continue }
            if iv.lo == iv.hi {
                singles += 1
                if singleSlot[iv.zone] == .max { singleSlot[iv.zone] = UInt32(singleJumps.count); singleJumps.append(jump) }
            } else {
                ranges += 1
                if rangeSlot[iv.zone] == .max { rangeSlot[iv.zone] = UInt32(rangeJumps.count); rangeJumps.append(jump) }
            }
        }
        var src = ElementList(), single = ElementList()
        src.reserveCapacity(ranges: ranges, width: f.width, data: true)
        single.reserveCapacity(ranges: singles, width: f.width, data: true)
        src.startData(with: rangeJumps)
        single.startData(with: singleJumps)
        for iv in parts.flat where jumps[iv.zone] != nil {
            if iv.lo == iv.hi {
                single.appendRange(f.value(iv.lo), f.value(iv.lo), dataSlot: singleSlot[iv.zone])
            } else {
                src.appendRange(f.value(iv.lo), f.value(iv.hi), dataSlot: rangeSlot[iv.zone])
            }
        }
        parts.src = reusing(NamedSet(name: "src_\(f.tag)", keyType: [f.addressType], dataType: .verdict, flags: .interval, elements: src))
        parts.srcAddress = reusing(NamedSet(name: "src_addr_\(f.tag)", keyType: [f.addressType], dataType: .verdict, elements: single))

        // Two passes over the union, the first counting it: the list is reserved exactly, and
        // no array of the union is held beside it.
        var zoned = ElementList(), runs = 0
        IntervalFlattener.forEachUnion(of: parts.flat) { _ in runs += 1 }
        zoned.reserveCapacity(ranges: runs, width: f.width, data: false)
        IntervalFlattener.forEachUnion(of: parts.flat) { zoned.appendRange(f.value($0.lowerBound), f.value($0.upperBound)) }
        parts.zoned = reusing(NamedSet(name: "zoned_\(f.tag)", keyType: [f.addressType], flags: .interval, elements: zoned))
        parts.audit = reusing(auditSet(f, flat: parts.flat))
    }

    /// `set`, its elements replaced by the previous table's identical list when there is one,
    /// so that the new list's storage is freed at once.
    func reusing(_ set: NamedSet) -> NamedSet {
        guard let old = previous[set.name], old == set.elements else { return set }
        var s = set
        s.elements = old
        return s
    }

    /// `audit_v4`: the member intervals of the zones in audit mode, longest prefix deciding, so
    /// that an enforced zone nested inside an audit zone stays enforced.
    func auditSet(_ f: FamilyInfo, flat: [LabeledInterval]) -> NamedSet {
        let audited = Set(policy.zones.indices.filter { policy.settings.audit || policy.zones[$0].audit })
        let intervals = flat.filter { audited.contains($0.zone) }.map { $0.lo...$0.hi }
        var elements = ElementList()
        for r in Merge.ranges(intervals) { elements.appendRange(f.value(r.lowerBound), f.value(r.upperBound)) }
        return NamedSet(name: "audit_\(f.tag)", keyType: [f.addressType], flags: .interval, elements: elements)
    }

    /// The rate-limited log statement of a verdict: NFLOG by default, or the kernel log.
    func logRule(_ nflogPrefix: String) -> Rule {
        let s = policy.settings
        // A burst of a tenth of a second's worth (at least 5) absorbs the first packets of a
        // connection attempt without letting a flood through.
        let limit = Expression.limit(perSecond: UInt64(s.logRate), burst: max(5, s.logRate / 10))
        switch s.logTo {
        case .nflog: return Rule([limit, .nflog(group: s.logGroup, prefix: nflogPrefix)])
        case .kernel:
            return Rule([limit, .log(prefix: ZoneCompiler.logPrefix + nflogPrefix + " ")])
        }
    }

    /// Audited packets: always logged (rate-limited), then accepted.
    func auditChain() -> Chain {
        Chain(name: "audit", rules: [logRule(ZoneCompiler.auditPrefix), Rule([.verdict(.accept)])])
    }

    /// Logs (rate-limited) and drops or rejects.
    func denyChain() -> Chain {
        var rules: [Rule] = []
        if policy.settings.logDenied {
            rules.append(logRule(ZoneCompiler.deniedPrefix))
        }
        switch policy.settings.denied {
        case .drop:
            rules.append(Rule([.verdict(.drop)]))
        case .reject:
            rules.append(Rule([.match(.l4proto, .equal(Value(6, width: 1))), .reject(.tcpReset)]))
            rules.append(Rule([.reject(.icmpxPortUnreachable)]))
        }
        return Chain(name: "deny", rules: rules)
    }

    /// `settings.failsafe`: inbound ports to this host accepted before any zone is looked at,
    /// so that no policy edit can lock the operator out of them.
    func failsafeRules() -> [Rule] {
        policy.settings.failsafe.compactMap { spec in
            guard case .ports(let proto, let range) = spec else { return nil }
            let port: Comparison = range.lowerBound == range.upperBound
                ? .equal(Value(UInt64(range.lowerBound), width: 2))
                : .inRange(Value(UInt64(range.lowerBound), width: 2), Value(UInt64(range.upperBound), width: 2))
            return Rule([.match(.l4proto, .equal(Value(UInt64(proto.number), width: 1))), .match(.thDport, port), .verdict(.accept)])
        }
    }

    /// The same decision procedure on every hook; only the meaning of an unzoned address differs.
    /// Built from sections so that hook-specific rules (before the zone dispatch, or in the
    /// deny tail) slot in without reshaping it.
    ///
    /// A new flow from a zoned source pays two lookups when its zone admits it: `src_*`, then
    /// the zone's own set. The test for ungoverned traffic (neither end zoned) comes after the
    /// zone dispatch, which cannot accept a packet whose destination is in no zone (a zone's
    /// set holds only zoned destinations), so the order changes no verdict.
    func baseChain(_ hook: Hook) -> Chain {
        let rules = prologue(hook) + zoneDispatch() + ungoverned() + edgeLookups(hook) + auditTail()
            + [Rule([.verdict(.goto("deny"))])]
        return Chain(name: hook.description, base: BaseChain(type: .filter, hook: hook, priority: 0, policy: .accept), rules: rules)
    }

    /// Established flows, neighbour discovery and failsafe ports (input) pass; invalid packets
    /// go to `invalid`, which lets ungoverned ones pass as well and denies the rest.
    func prologue(_ hook: Hook) -> [Rule] {
        var rules: [Rule] = [
            Rule([.match(.ctState, .anyBit(of: Value(0x2 | 0x4, width: 4))), .verdict(.accept)]),
            Rule([.match(.icmpv6Type, .inRange(Value(133, width: 1), Value(136, width: 1))), .verdict(.accept)]),
        ]
        if hook == .input { rules += failsafeRules() }
        rules.append(Rule([.match(.ctState, .anyBit(of: Value(0x1, width: 4))), .verdict(.goto("invalid"))]))
        return rules
    }

    /// Neither end in a zone (of the packet's family): not governed, accepted.
    func ungoverned() -> [Rule] {
        FamilyInfo.all.map { f in
            Rule([.lookup([f.saddr], set: "zoned_\(f.tag)", negated: true),
                  .lookup([f.daddr], set: "zoned_\(f.tag)", negated: true), .verdict(.accept)])
        }
    }

    /// Invalid packets: accepted when ungoverned, denied otherwise.
    func invalidChain() -> Chain {
        Chain(name: "invalid", rules: ungoverned() + [Rule([.verdict(.goto("deny"))])])
    }

    /// A zoned source jumps to its zone's chain, which accepts or returns.
    func zoneDispatch() -> [Rule] {
        FamilyInfo.all.flatMap { f in [
            Rule([.verdictMap([f.saddr], map: "src_addr_\(f.tag)")]),
            Rule([.verdictMap([f.saddr], map: "src_\(f.tag)")]),
        ] }
    }

    /// The zoned end meets an unzoned one: world, or host on the local hooks.
    func edgeLookups(_ hook: Hook) -> [Rule] {
        let toSite: EdgeSite = hook == .input ? .toHost : .toWorld
        let fromSite: EdgeSite = hook == .output ? .fromHost : .fromWorld
        var rules: [Rule] = []
        for f in FamilyInfo.all {
            let dstUnzoned = Expression.lookup([f.daddr], set: "zoned_\(f.tag)", negated: true)
            let srcUnzoned = Expression.lookup([f.saddr], set: "zoned_\(f.tag)", negated: true)
            rules.append(Rule([dstUnzoned, .verdictMap([f.saddr], map: "\(toSite.rawValue)_\(f.tag)")]))
            rules.append(Rule([srcUnzoned, .verdictMap([f.daddr], map: "\(fromSite.rawValue)_\(f.tag)")]))
        }
        return rules
    }

    /// The deny tail: a packet about to be denied with an end in an audit zone is audited.
    func auditTail() -> [Rule] {
        FamilyInfo.all.flatMap { f in [
            Rule([.lookup([f.saddr], set: "audit_\(f.tag)", negated: false), .verdict(.goto("audit"))]),
            Rule([.lookup([f.daddr], set: "audit_\(f.tag)", negated: false), .verdict(.goto("audit"))]),
        ] }
    }
}
