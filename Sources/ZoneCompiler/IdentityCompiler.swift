import Ruleset
import ZonePolicy

/// What the host's identities resolve to: gathered first (HostIdentity, getpwnam), then compiled.
public struct HostFacts: Hashable, Sendable {
    /// A resolved cgroup: its path from the cgroup2 root, id (inode number) and depth.
    public struct Cgroup: Hashable, Sendable, Comparable {
        public var path: String
        public var id: UInt64
        public var level: Int

        public init(path: String, id: UInt64, level: Int) {
            self.path = path
            self.id = id
            self.level = level
        }

        public static func < (a: Self, b: Self) -> Bool { (a.level, a.id, a.path) < (b.level, b.id, b.path) }
    }

    /// Zone name → the cgroups its units and cgroups resolve to now.
    public var cgroups: [String: [Cgroup]]
    /// Zone name → the uids its users resolve to.
    public var uids: [String: [UInt32]]

    public init(cgroups: [String: [Cgroup]] = [:], uids: [String: [UInt32]] = [:]) {
        self.cgroups = cgroups
        self.uids = uids
    }
}

/// The identity part of the table: classification by socket cgroup, socket owner and interface,
/// consulted on each hook before the address maps. Added only when the policy has identity zones,
/// so address-only policies compile exactly as before.
///
/// - `cg_out_lN` / `cg_in_lN`: `socket cgroupv2 level N` → `jump o_ZONE` / `jump i_ZONE`, one map
///   per level in use, the deepest first (the deepest named cgroup wins).
/// - `uid_out`: `meta skuid` → `jump o_ZONE`.
/// - `o_ZONE`: a local sender. Over loopback it writes the zone's value into the `ct_mark_bits`
///   field and accepts: the input hook decides, as it knows the receiver. Otherwise the zone's
///   address chain `z_ZONE`, then world and interface destinations, then `deny`.
/// - `i_ZONE`: a local receiver: senders by mark (local zones, or `host` for an empty field),
///   by address, by interface, or `world`; then `deny`.
/// - `l_ZONE`: a local sender of ZONE to a receiver in no zone (`host`).
/// - `ifz_*` maps and `fi_`/`fo_`/`ii_`/`od_` chains: interface zones, consulted only when the
///   address is in no zone.
/// The maps hold ids, so a unit restart changes two elements per level and nothing else.
struct IdentityCompiler {
    let policy: Policy
    let host: HostFacts
    let zoneChains: Set<String>
    let mask: UInt32
    /// Local zone → its value in the mark field (1…).
    let markValue: [String: UInt32]
    /// `interfaceLayers(policy)`.
    let interfaceLayers: [[(range: ValueRange, zone: String)]]

    static let loopback = "lo"

    init(policy: Policy, host: HostFacts, zoneChains: Set<String>) {
        self.policy = policy
        self.host = host
        self.zoneChains = zoneChains
        self.mask = policy.settings.ctMarkBits
        var values: [String: UInt32] = [:]
        for (i, z) in policy.zones.filter(\.isLocal).enumerated() {
            values[z.name] = Self.deposit(UInt32(i + 1), into: policy.settings.ctMarkBits)
        }
        markValue = values
        interfaceLayers = Self.interfaceLayers(policy)
    }

    var hasIdentities: Bool { policy.zones.contains { $0.isLocal || !$0.interfaces.isEmpty } }

    /// Spreads the low bits of `v` over the set bits of `mask` (the field need not be contiguous).
    static func deposit(_ v: UInt32, into mask: UInt32) -> UInt32 {
        var out: UInt32 = 0, bit: UInt32 = 1, m = mask
        while m != 0 && bit != 0 {
            let lowest = m & (~m &+ 1)
            if v & bit != 0 { out |= lowest }
            bit <<= 1
            m &= m - 1
        }
        return out
    }

    /// The cgroup levels with maps: those resolved now, those of `cgroups:` paths, and 2 (`*.slice/UNIT`) for units.
    var levels: [Int] {
        var out = Set<Int>()
        for z in policy.zones {
            for c in z.cgroups { out.insert(c.value.split(separator: "/").count) }
            if !z.units.isEmpty { out.insert(2) }
            for c in host.cgroups[z.name] ?? [] { out.insert(c.level) }
        }
        return out.filter { $0 >= 1 && $0 <= Selector.maxCgroupLevel }.sorted(by: >)
    }

    func extend(_ table: inout Table, flatten: (FamilyInfo) -> [LabeledInterval]) {
        guard hasIdentities else { return }
        var sets: [NamedSet] = []
        var chains: [Chain] = []
        let zones = policy.zones
        let local = zones.filter(\.isLocal)
        let ifaceZones = zones.filter { !$0.interfaces.isEmpty }
        let anyIface = !ifaceZones.isEmpty

        // Zones by name and rules by endpoint, looked up rather than searched: this runs on every
        // cgroup change, and a policy of hundreds of identity zones would make it quadratic.
        let zoneNamed = Dictionary(zones.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var rulesFrom: [Endpoint: [Int]] = [:], rulesTo: [Endpoint: [Int]] = [:]
        for (i, r) in policy.rules.enumerated() {
            for e in Set(r.from) { rulesFrom[e, default: []].append(i) }
            for e in Set(r.to) { rulesTo[e, default: []].append(i) }
        }

        // Member sets for address zones that identity chains name (longest prefix already decided).
        var memberSetNeeded = Set<String>()
        func members(_ zone: String) -> Bool {
            guard let z = zoneNamed[zone], !z.members.isEmpty else { return false }
            memberSetNeeded.insert(zone)
            return true
        }

        func portExprs(_ spec: PortSpec, _ f: FamilyInfo?) -> [[Expression]] {
            switch spec {
            case .any: return [[]]
            case .ports(let p, let r):
                let port: Expression = r.count == 1 ? .match(.thDport, .equal(Value(UInt64(r.lowerBound), width: 2)))
                    : .match(.thDport, .inRange(Value(UInt64(r.lowerBound), width: 2), Value(UInt64(r.upperBound), width: 2)))
                return [[.match(.l4proto, .equal(Value(UInt64(p.number), width: 1))), port]]
            case .wholeProtocol(let p): return [[.match(.l4proto, .equal(Value(UInt64(p.number), width: 1)))]]
            case .icmpEcho: return f.map { [[$0.echo]] } ?? FamilyInfo.all.map { [$0.echo] }
            }
        }
        /// Rules `conds + ports accept`; per family when the conditions depend on it.
        func allow(_ specs: [PortSpec], perFamily: ((FamilyInfo) -> [Expression])?, _ conds: [Expression] = []) -> [Rule] {
            var out: [Rule] = []
            if let perFamily {
                for f in FamilyInfo.all {
                    for spec in specs { for p in portExprs(spec, f) { out.append(Rule(conds + perFamily(f) + p + [.verdict(.accept)])) } }
                }
            } else {
                for spec in specs { for p in portExprs(spec, nil) { out.append(Rule(conds + p + [.verdict(.accept)])) } }
            }
            return out
        }
        /// Rules whose `from` includes `from` and `to` includes `to`.
        func rules(from: Endpoint? = nil, to: Endpoint? = nil) -> [AllowRule] {
            switch (from, to) {
            case (let from?, let to?): (rulesFrom[from] ?? []).map { policy.rules[$0] }.filter { $0.to.contains(to) }
            case (let from?, nil): (rulesFrom[from] ?? []).map { policy.rules[$0] }
            case (nil, let to?): (rulesTo[to] ?? []).map { policy.rules[$0] }
            case (nil, nil): policy.rules
            }
        }
        let lo = InterfaceName.value(Self.loopback)
        let iifLo = Expression.match(.iifname, .equal(lo)), iifNotLo = Expression.match(.iifname, .notEqual(lo))
        let oifLo = Expression.match(.oifname, .equal(lo))
        func unzoned(_ f: FamilyInfo, source: Bool) -> Expression { .lookup([source ? f.saddr : f.daddr], set: "zoned_\(f.tag)", negated: true) }
        func markIs(_ v: UInt32) -> Expression { .match(.ctMark, .masked(Value(UInt64(mask), width: 4), equals: Value(UInt64(v), width: 4))) }
        let notAnyIface: (Selector) -> [Expression] = { sel in anyIface ? [.lookup([sel], set: "ifz_all", negated: true)] : [] }

        // Audit mode: a packet no rule admits is audited (logged, passed) instead of denied when
        // either end is in an audit zone, as the base chains' tail does for addresses.
        let audited = Set(zones.filter { policy.settings.audit || $0.audit }.map(\.name))
        let auditedAddresses = zones.contains { audited.contains($0.name) && !$0.members.isEmpty }
        /// The end of an identity chain of zone `own`. `ifacePeer` is the side on which the other
        /// end may be an interface zone (its address in no zone); `markPeer`, whether it may be a
        /// local zone sending over loopback.
        func denied(own: String, ifacePeer: Selector? = nil, markPeer: Bool = false) -> [Rule] {
            if audited.contains(own) { return [Rule([.verdict(.goto("audit"))])] }
            var out: [Rule] = []
            if auditedAddresses {
                for f in FamilyInfo.all {
                    out.append(Rule([.lookup([f.saddr], set: "audit_\(f.tag)", negated: false), .verdict(.goto("audit"))]))
                    out.append(Rule([.lookup([f.daddr], set: "audit_\(f.tag)", negated: false), .verdict(.goto("audit"))]))
                }
            }
            if let sel = ifacePeer {
                for z in ifaceZones where audited.contains(z.name) {
                    for f in FamilyInfo.all {
                        out.append(Rule([unzoned(f, source: sel == .iifname), .lookup([sel], set: "if_\(z.name)", negated: false),
                                         .verdict(.goto("audit"))]))
                    }
                }
            }
            if markPeer {
                for z in local where audited.contains(z.name) { out.append(Rule([iifLo, markIs(markValue[z.name]!), .verdict(.goto("audit"))])) }
            }
            return out + [Rule([.verdict(.goto("deny"))])]
        }

        /// Rules admitting senders of every kind (local by mark, address, interface, world) into `to`.
        func fromAnySender(to: Endpoint, remoteOnly: Bool) -> [Rule] {
            var out: [Rule] = []
            for r in rules(to: to) {
                for from in r.from {
                    switch from {
                    case .host:
                        if !remoteOnly { out += allow(r.ports, perFamily: nil, [iifLo, markIs(0)]) }
                    case .world:
                        out += allow(r.ports, perFamily: { f in [iifNotLo, unzoned(f, source: true)] + notAnyIface(.iifname) })
                    case .zone(let name):
                        let z = zoneNamed[name]!
                        if !remoteOnly, let v = markValue[name] { out += allow(r.ports, perFamily: nil, [iifLo, markIs(v)]) }
                        if members(name) { out += allow(r.ports, perFamily: { f in [.lookup([f.saddr], set: "m_\(name)_\(f.tag)", negated: false)] }) }
                        if !z.interfaces.isEmpty {
                            out += allow(r.ports, perFamily: { f in [iifNotLo, unzoned(f, source: true), .lookup([.iifname], set: "if_\(name)", negated: false)] })
                        }
                    }
                }
            }
            return out
        }
        /// Rules admitting remote destinations of every kind (address, interface, world) from `from`.
        func toAnyRemote(from: Endpoint) -> [Rule] {
            var out: [Rule] = []
            for r in rules(from: from) {
                for to in r.to {
                    switch to {
                    case .host: break
                    case .world:
                        out += allow(r.ports, perFamily: { f in [unzoned(f, source: false)] + notAnyIface(.oifname) })
                    case .zone(let name):
                        let z = zoneNamed[name]!
                        // With an address chain `z_FROM`, the caller jumps to it for address destinations.
                        if !zoneChains.contains("z_\(from)"), members(name) {
                            out += allow(r.ports, perFamily: { f in [.lookup([f.daddr], set: "m_\(name)_\(f.tag)", negated: false)] })
                        }
                        if !z.interfaces.isEmpty {
                            out += allow(r.ports, perFamily: { f in [unzoned(f, source: false), .lookup([.oifname], set: "if_\(name)", negated: false)] })
                        }
                    }
                }
            }
            return out
        }

        /// Rules admitting a local destination from `from`: an address in a zone (the zone's address
        /// chain, or the member sets), else `host`.
        func toLocal(from: Endpoint) -> [Rule] {
            var out: [Rule] = []
            if case .zone(let name) = from, zoneChains.contains("z_\(name)") {
                out.append(Rule([.verdict(.jump("z_\(name)"))]))
            } else {
                for r in rules(from: from) {
                    for case .zone(let name) in r.to where members(name) {
                        out += allow(r.ports, perFamily: { f in [.lookup([f.daddr], set: "m_\(name)_\(f.tag)", negated: false)] })
                    }
                }
            }
            for r in rules(from: from, to: .host) { out += allow(r.ports, perFamily: { f in [unzoned(f, source: false)] }) }
            return out
        }
        /// Rules admitting a local sender that is no local zone into `to`: an address in a zone,
        /// else `host`.
        func fromLocal(to: Endpoint) -> [Rule] {
            var out: [Rule] = []
            for r in rules(to: to) {
                for from in r.from {
                    switch from {
                    case .host: out += allow(r.ports, perFamily: { f in [unzoned(f, source: true)] })
                    case .zone(let name) where members(name):
                        out += allow(r.ports, perFamily: { f in [.lookup([f.saddr], set: "m_\(name)_\(f.tag)", negated: false)] })
                    default: break
                    }
                }
            }
            return out
        }

        // Identity rules come before the base chains' `ct state invalid goto invalid`, and the
        // `invalid` chain knows addresses only: a packet an identity governs that conntrack calls
        // invalid is denied here, as a governed invalid packet is there.
        let invalid = Rule([.match(.ctState, .anyBit(of: Value(0x1, width: 4))), .verdict(.goto("deny"))])

        // Local senders and receivers.
        for z in local {
            var o: [Rule] = [invalid, Rule([oifLo, .setCtMarkField(mask: mask, value: markValue[z.name]!), .verdict(.accept)])]
            // Address destinations of this zone's rules are in its address chain, when it has one.
            if zoneChains.contains("z_\(z.name)") { o.append(Rule([.verdict(.jump("z_\(z.name)"))])) }
            o += toAnyRemote(from: .zone(z.name))
            o += denied(own: z.name, ifacePeer: .oifname)
            chains.append(Chain(name: "o_\(z.name)", rules: o))
            if z.hasCgroups {
                chains.append(Chain(name: "i_\(z.name)", rules: [invalid] + fromAnySender(to: .zone(z.name), remoteOnly: false)
                    + denied(own: z.name, ifacePeer: .iifname, markPeer: true)))
            }
            // Over loopback to a receiver in no local zone: decided on input, by the sender's mark.
            let toHost = toLocal(from: .zone(z.name))
            if !toHost.isEmpty || audited.contains(z.name) || auditedAddresses {
                chains.append(Chain(name: "l_\(z.name)", rules: [invalid] + toHost + denied(own: z.name)))
            }
        }
        // Interface zones.
        for z in ifaceZones {
            let e = Endpoint.zone(z.name)
            let jump = zoneChains.contains("z_\(z.name)") ? [Rule([.verdict(.jump("z_\(z.name)"))])] : []
            chains.append(Chain(name: "fi_\(z.name)", rules: [invalid] + jump + toAnyRemote(from: e) + denied(own: z.name, ifacePeer: .oifname)))
            chains.append(Chain(name: "fo_\(z.name)", rules: [invalid] + fromAnySender(to: e, remoteOnly: true) + denied(own: z.name)))
            chains.append(Chain(name: "ii_\(z.name)", rules: [invalid] + toLocal(from: e) + denied(own: z.name)))
            chains.append(Chain(name: "od_\(z.name)", rules: [invalid] + fromLocal(to: e) + denied(own: z.name)))
            sets.append(NamedSet(name: "if_\(z.name)", keyType: [.ifname], flags: .interval,
                                 elements: Self.outermost(z.interfaces.map(\.value)).map { SetElement(key: [$0]) }))
        }

        // Maps: cgroup ids per level and direction, uids (the only part that depends on `host`), interfaces.
        sets += hostMaps()
        if anyIface {
            sets.append(NamedSet(name: "ifz_all", keyType: [.ifname], flags: .interval,
                                 elements: Self.outermost(ifaceZones.flatMap { $0.interfaces.map(\.value) }).map { SetElement(key: [$0]) }))
            for (name, prefix) in [("ifz_src", "fi_"), ("ifz_dst", "fo_"), ("ifz_in", "ii_"), ("ifz_out", "od_")] {
                for (k, layer) in interfaceLayers.enumerated() {
                    sets.append(NamedSet(name: Self.layerMap(name, k), keyType: [.ifname], dataType: .verdict, flags: .interval, elements: layer.map {
                        SetElement(key: [$0.range], data: .verdict(.jump(prefix + $0.zone)))
                    }))
                }
            }
        }
        for name in memberSetNeeded.sorted() {
            let index = policy.zones.firstIndex { $0.name == name }!
            for f in FamilyInfo.all {
                let flat = flatten(f).filter { $0.zone == index }
                sets.append(NamedSet(name: "m_\(name)_\(f.tag)", keyType: [f.addressType], flags: .interval,
                                     elements: ElementList(IntervalFlattener.union(flat).lazy.map { SetElement(key: [f.range($0.lowerBound, $0.upperBound)]) })))
            }
        }

        // Base chains: identity classification right after conntrack and neighbour discovery.
        var input: [Rule] = [], output: [Rule] = [], forward: [Rule] = []
        let levels = self.levels
        let hasUsers = local.contains { !$0.users.isEmpty }
        for level in levels {
            let sel = Selector.cgroup(level: level)!
            output.append(Rule([.verdictMap([sel], map: "cg_out_l\(level)")]))
            input.append(Rule([.verdictMap([sel], map: "cg_in_l\(level)")]))
        }
        if hasUsers { output.append(Rule([.verdictMap([.metaSkuid], map: "uid_out")])) }
        let chainNames = Set(chains.map(\.name))
        for z in local {
            let target = chainNames.contains("l_\(z.name)") ? "l_\(z.name)" : "deny"
            input.append(Rule([iifLo, markIs(markValue[z.name]!), .verdict(.goto(target))]))
        }
        if anyIface {
            // The most specific patterns' layer first (`interfaceLayers`).
            let layers = interfaceLayers.indices
            for f in FamilyInfo.all {
                for k in layers { forward.append(Rule([unzoned(f, source: true), .verdictMap([.iifname], map: Self.layerMap("ifz_src", k))])) }
                for k in layers { forward.append(Rule([unzoned(f, source: false), .verdictMap([.oifname], map: Self.layerMap("ifz_dst", k))])) }
                for k in layers { input.append(Rule([unzoned(f, source: true), .verdictMap([.iifname], map: Self.layerMap("ifz_in", k))])) }
                for k in layers { output.append(Rule([unzoned(f, source: false), .verdictMap([.oifname], map: Self.layerMap("ifz_out", k))])) }
            }
        }
        for i in table.chains.indices {
            guard let hook = table.chains[i].base?.hook else { continue }
            let extra = hook == .input ? input : hook == .output ? output : forward
            // After `ct state established,related accept`, the neighbour-discovery accept and the
            // failsafe ports (input), which hold whatever the zones: right before `ct state invalid`.
            let rules = table.chains[i].rules
            let at = rules.firstIndex { $0.expressions.last == .verdict(.goto("invalid")) } ?? min(2, rules.count)
            table.chains[i].rules.insert(contentsOf: extra, at: at)
        }
        let firstBase = table.chains.firstIndex { $0.base != nil } ?? table.chains.count
        table.chains.insert(contentsOf: chains, at: firstBase)
        table.sets += sets
    }

    /// The sets that depend on what the identities resolve to on this host, in table order:
    /// `cg_out_lN`/`cg_in_lN` (cgroup id → `o_ZONE`/`i_ZONE`) for each level in `levels`, and
    /// `uid_out` when a zone names users. Everything else in the table depends on the policy alone.
    func hostMaps() -> [NamedSet] {
        var sets: [NamedSet] = []
        let local = policy.zones.filter(\.isLocal)
        var byLevel: [Int: [(UInt64, String)]] = [:]
        for z in local where z.hasCgroups {
            for c in host.cgroups[z.name] ?? [] where c.level <= Selector.maxCgroupLevel { byLevel[c.level, default: []].append((c.id, z.name)) }
        }
        for level in levels {
            // One id in two zones (a glob and a path naming one directory): the first zone by name keeps it.
            var seen = Set<UInt64>()
            let entries = (byLevel[level] ?? []).sorted { ($0.1, $0.0) < ($1.1, $1.0) }.filter { seen.insert($0.0).inserted }
            for (dir, prefix) in [("out", "o_"), ("in", "i_")] {
                sets.append(NamedSet(name: "cg_\(dir)_l\(level)", keyType: [.cgroupv2], dataType: .verdict, elements: entries.map {
                    SetElement(key: [ValueRange(Value(UInt64($0.0), width: 8))], data: .verdict(.jump(prefix + $0.1)))
                }))
            }
        }
        if local.contains(where: { !$0.users.isEmpty }) {
            var seen = Set<UInt32>()
            var elements: [SetElement] = []
            for z in local where !z.users.isEmpty {
                for uid in (host.uids[z.name] ?? []).sorted() where seen.insert(uid).inserted {
                    elements.append(SetElement(key: [ValueRange(Value(UInt64(uid), width: 4))], data: .verdict(.jump("o_\(z.name)"))))
                }
            }
            sets.append(NamedSet(name: "uid_out", keyType: [.uid], dataType: .verdict, elements: elements))
        }
        return sets
    }

    /// The interface zones' patterns in layers, the most specific first: within a layer no two
    /// patterns overlap, and a pattern inside another (`veth-b*` in `veth*`, `eth0` in `eth*`)
    /// is in an earlier layer, so the first layer that matches decides, the most specific pattern
    /// winning as the longest prefix does for addresses. Each element is one pattern as written,
    /// never a piece of one or two merged: an interval of interface names that is not `NAME` or
    /// `PREFIX*` has no nft syntax, and `nft -f` of the plan must load what apply programs. A
    /// policy without nested patterns has one layer.
    static func interfaceLayers(_ policy: Policy) -> [[(range: ValueRange, zone: String)]] {
        let patterns = policy.zones.flatMap { z in z.interfaces.map { (range: InterfaceName.range($0.value), zone: z.name) } }
        // A pattern inside another of its own zone adds nothing, unless a pattern of another zone
        // lies between the two (`veth-b1` of A inside `veth-b*` of B inside `veth*` of A).
        let kept = patterns.filter { p in
            !patterns.contains { q in
                q.zone == p.zone && q.range != p.range && q.range.contains(p.range)
                    && !patterns.contains { r in r.zone != p.zone && r.range.contains(p.range) && q.range.contains(r.range) }
            }
        }
        // Most specific first, then each pattern one layer after the deepest pattern inside it.
        let span = { (r: ValueRange) in r.hi.uint128 &- r.lo.uint128 }
        let ordered = kept.sorted { (span($0.range), $0.range.lo) < (span($1.range), $1.range.lo) }
        var layerOf: [Int] = []
        for (i, p) in ordered.enumerated() {
            let inside = ordered[..<i].indices.filter { p.range.contains(ordered[$0].range) }
            layerOf.append(inside.map { layerOf[$0] + 1 }.max() ?? 0)
        }
        var layers = [[(range: ValueRange, zone: String)]](repeating: [], count: (layerOf.max() ?? 0) + 1)
        for (i, p) in ordered.enumerated() { layers[layerOf[i]].append(p) }
        return layers.map { $0.sorted { $0.range.lo < $1.range.lo } }
    }

    /// `ifz_src`, then `ifz_src_1`, `ifz_src_2`, … for the layers after the first.
    static func layerMap(_ name: String, _ layer: Int) -> String { layer == 0 ? name : "\(name)_\(layer)" }

    /// The patterns that are inside no other: the same names, each as one pattern as written.
    static func outermost(_ patterns: [String]) -> [ValueRange] {
        let ranges = Set(patterns.map(InterfaceName.range))
        return ranges.filter { r in !ranges.contains { $0 != r && $0.contains(r) } }.sorted { $0.lo < $1.lo }
    }
}
