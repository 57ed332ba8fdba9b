import Ruleset
import ZonePolicy

/// Compiles a policy into the `table inet zonewall` rule set. Pure and deterministic.
///
/// Shape (per address family; `_v6` twins of every `_v4` object):
/// - `zoned_v4`: every member address; a packet with neither end in it is not governed.
/// - `src_v4`: source interval map → `jump z_ZONE`, longest prefix wins (intervals are flattened).
/// - `z_ZONE` chains, one per zone with zone-to-zone rules, each doing constant lookups in
///   `z_ZONE_v4` (`daddr . l4proto . dport`), `z_ZONE_any_v4` (`daddr`), `z_ZONE_echo_v4` (`daddr`).
/// - `to_world_*`, `to_host_*` (keyed by the zoned source) and `from_world_*`, `from_host_*`
///   (keyed by the zoned destination) for traffic between a zone and the world or this host.
/// - base chains `input`, `forward`, `output` with identical logic, differing only in what an
///   address outside every zone means there.
///
/// No chain grows with the number of zones, members or rules: the per-packet cost is a fixed
/// number of set lookups. Membership and rule edits become element changes, except when a
/// zone gains or loses its first zone-to-zone rule of a kind (a new set or chain).
public enum ZoneCompiler {
    /// The table's family and name.
    public static let family = Family.inet
    public static let tableName = "zonewall"
    /// Log prefix for denied packets.
    public static let logPrefix = "zonewall "

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

/// The three kinds of lookup a rule's port specs fall into.
enum LookupKind: CaseIterable {
    /// `tcp/443`, `udp/53-54`, `sctp` (whole protocol is the port range 0-65535).
    case ports
    /// `any`.
    case any
    /// `icmp`: echo request.
    case echo

    var suffix: String {
        switch self {
        case .ports: ""
        case .any: "_any"
        case .echo: "_echo"
        }
    }
}

/// Per-family names and selectors.
struct FamilyInfo {
    let family: AddressFamily
    var tag: String { family == .ipv4 ? "v4" : "v6" }
    var addressType: DataType { family == .ipv4 ? .ipv4Address : .ipv6Address }
    var width: Int { family == .ipv4 ? 4 : 16 }
    var saddr: Selector { family == .ipv4 ? .ipSaddr : .ip6Saddr }
    var daddr: Selector { family == .ipv4 ? .ipDaddr : .ip6Daddr }
    var echo: Expression {
        family == .ipv4 ? .match(.icmpType, .equal(Value(8, width: 1))) : .match(.icmpv6Type, .equal(Value(128, width: 1)))
    }
    static let all = [FamilyInfo(family: .ipv4), FamilyInfo(family: .ipv6)]

    func value(_ a: UInt128) -> Value { Value(a, width: width) }
    func range(_ lo: UInt128, _ hi: UInt128) -> ValueRange { ValueRange(value(lo), value(hi)) }
}

/// A set that is filled per lookup kind: keys of zoned address ranges, with ports for `.ports`.
struct KindSets {
    /// (address interval index list, proto, port range) for `.ports`; merged when built.
    var ports: [PortKey: [ClosedRange<UInt16>]] = [:]
    var any: [ClosedRange<UInt128>] = []
    var echo: [ClosedRange<UInt128>] = []

    struct PortKey: Hashable {
        var lo: UInt128
        var hi: UInt128
        var proto: UInt8
    }

    var isEmpty: Bool { ports.isEmpty && any.isEmpty && echo.isEmpty }

    func isEmpty(_ kind: LookupKind) -> Bool {
        switch kind {
        case .ports: ports.isEmpty
        case .any: any.isEmpty
        case .echo: echo.isEmpty
        }
    }

    mutating func add(_ spec: PortSpec, intervals: [ClosedRange<UInt128>]) {
        for iv in intervals {
            switch spec {
            case .any: any.append(iv)
            case .icmpEcho: echo.append(iv)
            case .wholeProtocol(let p): ports[PortKey(lo: iv.lowerBound, hi: iv.upperBound, proto: p.number), default: []].append(0...65535)
            case .ports(let p, let r): ports[PortKey(lo: iv.lowerBound, hi: iv.upperBound, proto: p.number), default: []].append(r)
            }
        }
    }

    /// Elements for the kind, merged so that no two overlap (the kernel refuses overlaps).
    func elements(_ kind: LookupKind, _ f: FamilyInfo) -> ElementList {
        switch kind {
        case .ports:
            var out = ElementList()
            for (key, ranges) in ports {
                for r in Merge.ranges(ranges) {
                    out.append(SetElement(key: [
                        f.range(key.lo, key.hi),
                        ValueRange(Value(UInt64(key.proto), width: 1)),
                        ValueRange(Value(UInt64(r.lowerBound), width: 2), Value(UInt64(r.upperBound), width: 2)),
                    ]))
                }
            }
            return out
        case .any, .echo:
            return ElementList(Merge.intervals(kind == .any ? any : echo).lazy.map { SetElement(key: [f.range($0.lowerBound, $0.upperBound)]) })
        }
    }
}

enum Merge {
    /// Sorted, overlapping or adjacent ranges joined.
    static func ranges(_ rs: [ClosedRange<UInt16>]) -> [ClosedRange<UInt16>] {
        var out: [ClosedRange<UInt16>] = []
        for r in rs.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = out.last, last.upperBound == .max || Int(last.upperBound) + 1 >= Int(r.lowerBound) {
                out[out.count - 1] = last.lowerBound...Swift.max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    static func intervals(_ rs: [ClosedRange<UInt128>]) -> [ClosedRange<UInt128>] {
        var out: [ClosedRange<UInt128>] = []
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
        self.policy = policy
        self.zoneIndex = Dictionary(uniqueKeysWithValues: policy.zones.enumerated().map { ($1.name, $0) })
    }

    /// The four sites where a zone meets the world or this host.
    enum EdgeSite: String, CaseIterable {
        case toWorld = "to_world", toHost = "to_host", fromWorld = "from_world", fromHost = "from_host"
        /// Whether the set is keyed by the packet's source (the zoned end is the source).
        var keyedBySource: Bool { self == .toWorld || self == .toHost }
    }

    mutating func build() -> Table {
        var sets: [NamedSet] = []
        var zoneChains: [Chain] = []
        var zoneSets: [NamedSet] = []
        var srcMaps: [NamedSet] = []
        var zonedSets: [NamedSet] = []
        var edgeSets: [NamedSet] = []

        // Per family: flatten members, then distribute each rule's specs into lookup sets.
        var chainRules: [Int: [Rule]] = [:]
        for f in FamilyInfo.all {
            // Scratch is scoped so that it is freed as soon as it is used: at 100,000 members each
            // of these arrays takes a few MB, and a daemon compiles while holding its previous table.
            let flat = IntervalFlattener.flatten(policy.zones.enumerated().flatMap { i, z in
                z.members.filter { $0.value.family == f.family }.map { (prefix: $0.value, zone: i) }
            })
            let hasChain = buildZoneAndEdgeSets(f, flat: flat, chainRules: &chainRules, zoneSets: &zoneSets, edgeSets: &edgeSets)
            srcMaps.append(reusing(NamedSet(name: "src_\(f.tag)", keyType: [f.addressType], dataType: .verdict,
                                            flags: .interval, elements: sourceMap(f, flat: flat, hasChain: hasChain))))
            zonedSets.append(reusing(NamedSet(name: "zoned_\(f.tag)", keyType: [f.addressType], flags: .interval,
                                              elements: ElementList(IntervalFlattener.union(flat).lazy.map {
                                                  SetElement(key: [f.range($0.lowerBound, $0.upperBound)])
                                              }))))
        }
        for (zone, rules) in chainRules.sorted(by: { $0.key < $1.key }) {
            // v4 and v6 rules of one zone were appended family by family; keep that order.
            zoneChains.append(Chain(name: "z_\(policy.zones[zone].name)", rules: rules))
        }
        sets = zonedSets + edgeSets + zoneSets + srcMaps

        var chains = [denyChain()] + zoneChains
        chains += [Hook.input, .forward, .output].map(baseChain)
        // Unchanged chains keep the previous rules' storage: comparing them is then immediate.
        var table = Table(family: ZoneCompiler.family, name: ZoneCompiler.tableName, chains: chains, sets: sets)
        let policy = self.policy
        IdentityCompiler(policy: policy, host: host, zoneChains: Set(zoneChains.map(\.name))).extend(&table) { f in
            IntervalFlattener.flatten(policy.zones.enumerated().flatMap { i, z in
                z.members.filter { $0.value.family == f.family }.map { (prefix: $0.value, zone: i) }
            })
        }
        for i in table.chains.indices {
            if let old = previousRules[table.chains[i].name], old == table.chains[i].rules { table.chains[i].rules = old }
        }
        return table
    }

    /// The source map's elements: each flattened interval of a zone with a chain → `jump z_ZONE`.
    func sourceMap(_ f: FamilyInfo, flat: [LabeledInterval], hasChain: Set<Int>) -> ElementList {
        var elements = ElementList()
        var jumps: [Int: ElementData] = [:]
        for iv in flat where hasChain.contains(iv.zone) {
            let jump = jumps[iv.zone] ?? .verdict(.jump("z_\(policy.zones[iv.zone].name)"))
            jumps[iv.zone] = jump
            elements.append(SetElement(key: [f.range(iv.lo, iv.hi)], data: jump))
        }
        return elements
    }

    /// The zones' chains' rules and sets, and the world and host sets, of one family. Returns
    /// the zones that got a chain.
    func buildZoneAndEdgeSets(_ f: FamilyInfo, flat: [LabeledInterval], chainRules: inout [Int: [Rule]],
                              zoneSets: inout [NamedSet], edgeSets: inout [NamedSet]) -> Set<Int> {
        var intervalsOf: [Int: [ClosedRange<UInt128>]] = [:]
        for iv in flat { intervalsOf[iv.zone, default: []].append(iv.lo...iv.hi) }

        // Zone-to-zone rules grouped by source zone, so that each zone's sets are built,
        // stored compactly and their scratch space freed before the next zone's.
        var outgoing: [Int: [(to: Int, ports: [PortSpec])]] = [:]
        var edges: [EdgeSite: KindSets] = [:]
        for rule in policy.rules {
            for from in rule.from {
                for to in rule.to {
                    switch (from, to) {
                    case (.zone(let a), .zone(let b)):
                        outgoing[zoneIndex[a]!, default: []].append((zoneIndex[b]!, rule.ports))
                    case (.zone(let a), .world), (.zone(let a), .host):
                        let site: EdgeSite = to == .world ? .toWorld : .toHost
                        let src = intervalsOf[zoneIndex[a]!] ?? []
                        for spec in rule.ports { edges[site, default: KindSets()].add(spec, intervals: src) }
                    case (.world, .zone(let b)), (.host, .zone(let b)):
                        let site: EdgeSite = from == .world ? .fromWorld : .fromHost
                        let dst = intervalsOf[zoneIndex[b]!] ?? []
                        for spec in rule.ports { edges[site, default: KindSets()].add(spec, intervals: dst) }
                    default:
                        break  // world/host ↔ world/host is not governed
                    }
                }
            }
        }

        // Per-source zone chains and sets.
        var hasChain = Set<Int>()
        for (zone, targets) in outgoing.sorted(by: { $0.key < $1.key }) {
            var kinds = KindSets()
            for (b, ports) in targets {
                let dst = intervalsOf[b] ?? []
                for spec in ports { kinds.add(spec, intervals: dst) }
            }
            guard !kinds.isEmpty else { continue }
            hasChain.insert(zone)
            let name = policy.zones[zone].name
            for kind in LookupKind.allCases where !kinds.isEmpty(kind) {
                let setName = "z_\(name)\(kind.suffix)_\(f.tag)"
                zoneSets.append(reusing(lookupSet(setName, kind: kind, f, elements: kinds.elements(kind, f))))
                chainRules[zone, default: []].append(lookupRule(kind, f, set: setName, keyedBySource: false))
            }
        }
        for site in EdgeSite.allCases {
            let kinds = edges[site] ?? KindSets()
            for kind in LookupKind.allCases {
                edgeSets.append(reusing(lookupSet("\(site.rawValue)\(kind.suffix)_\(f.tag)", kind: kind, f, elements: kinds.elements(kind, f))))
            }
        }
        return hasChain
    }

    /// `set`, its elements replaced by the previous table's identical list when there is one,
    /// so that the new list's storage is freed at once.
    func reusing(_ set: NamedSet) -> NamedSet {
        guard let old = previous[set.name], old == set.elements else { return set }
        var s = set
        s.elements = old
        return s
    }

    func lookupSet(_ name: String, kind: LookupKind, _ f: FamilyInfo, elements: ElementList) -> NamedSet {
        let keyType: [DataType] = kind == .ports ? [f.addressType, .inetProtocol, .inetService] : [f.addressType]
        return NamedSet(name: name, keyType: keyType, flags: .interval, elements: elements)
    }

    /// `ADDR . meta l4proto . th dport @set accept`, `ADDR @set accept`, or `icmp type echo-request ADDR @set accept`.
    func lookupRule(_ kind: LookupKind, _ f: FamilyInfo, set: String, keyedBySource: Bool, guardExpr: [Expression] = []) -> Rule {
        let addr = keyedBySource ? f.saddr : f.daddr
        switch kind {
        case .ports: return Rule(guardExpr + [.lookup([addr, .l4proto, .thDport], set: set, negated: false), .verdict(.accept)])
        case .any: return Rule(guardExpr + [.lookup([addr], set: set, negated: false), .verdict(.accept)])
        case .echo: return Rule([f.echo] + guardExpr + [.lookup([addr], set: set, negated: false), .verdict(.accept)])
        }
    }

    /// Logs (rate-limited) and drops or rejects.
    func denyChain() -> Chain {
        var rules: [Rule] = []
        if policy.settings.logDenied {
            rules.append(Rule([.limit(perSecond: 10, burst: 5), .log(prefix: ZoneCompiler.logPrefix)]))
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

    /// The same decision procedure on every hook; only the meaning of an unzoned address differs.
    func baseChain(_ hook: Hook) -> Chain {
        var rules: [Rule] = [
            Rule([.match(.ctState, .anyBit(of: Value(0x2 | 0x4, width: 4))), .verdict(.accept)]),
            Rule([.match(.icmpv6Type, .inRange(Value(133, width: 1), Value(136, width: 1))), .verdict(.accept)]),
        ]
        for f in FamilyInfo.all {
            rules.append(Rule([.lookup([f.saddr], set: "zoned_\(f.tag)", negated: true),
                               .lookup([f.daddr], set: "zoned_\(f.tag)", negated: true), .verdict(.accept)]))
        }
        rules.append(Rule([.match(.ctState, .anyBit(of: Value(0x1, width: 4))), .verdict(.goto("deny"))]))
        for f in FamilyInfo.all {
            rules.append(Rule([.verdictMap([f.saddr], map: "src_\(f.tag)")]))
        }
        // The zoned end meets an unzoned one: world, or host on the local hooks.
        let toSite: EdgeSite = hook == .input ? .toHost : .toWorld
        let fromSite: EdgeSite = hook == .output ? .fromHost : .fromWorld
        for f in FamilyInfo.all {
            let dstUnzoned = Expression.lookup([f.daddr], set: "zoned_\(f.tag)", negated: true)
            let srcUnzoned = Expression.lookup([f.saddr], set: "zoned_\(f.tag)", negated: true)
            for kind in LookupKind.allCases {
                rules.append(lookupRule(kind, f, set: "\(toSite.rawValue)\(kind.suffix)_\(f.tag)", keyedBySource: true, guardExpr: [dstUnzoned]))
            }
            for kind in LookupKind.allCases {
                rules.append(lookupRule(kind, f, set: "\(fromSite.rawValue)\(kind.suffix)_\(f.tag)", keyedBySource: false, guardExpr: [srcUnzoned]))
            }
        }
        rules.append(Rule([.verdict(.goto("deny"))]))
        return Chain(name: hook.description, base: BaseChain(type: .filter, hook: hook, priority: 0, policy: .accept), rules: rules)
    }
}
