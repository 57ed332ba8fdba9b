/// One concrete flow's protocol and port, as a packet carries them.
public struct Flow: Hashable, Sendable {
    /// IP protocol number.
    public var proto: UInt8
    /// Destination port for TCP, UDP and SCTP.
    public var port: UInt16?
    /// ICMP/ICMPv6 type, for ICMP.
    public var icmpType: UInt8?

    public init(proto: UInt8, port: UInt16? = nil, icmpType: UInt8? = nil) {
        self.proto = proto
        self.port = port
        self.icmpType = icmpType
    }

    /// Echo request of either family.
    public var isEchoRequest: Bool { (proto == 1 && icmpType == 8) || (proto == 58 && icmpType == 128) }
}

extension PortSpec {
    /// Whether this spec admits the flow.
    public func admits(_ f: Flow) -> Bool {
        switch self {
        case .any: true
        case .icmpEcho: f.isEchoRequest
        case .wholeProtocol(let p): f.proto == p.number
        case .ports(let p, let r): f.proto == p.number && f.port.map(r.contains) == true
        }
    }
}

/// Where a packet is seen; it decides what an address outside every zone means.
public enum HookContext: String, Hashable, Sendable, CaseIterable {
    /// Delivered to this machine: an unmatched destination is `host`.
    case input
    /// Routed through this machine: unmatched addresses are `world`.
    case forward
    /// Sent by this machine: an unmatched source is `host`.
    case output
}

/// The answer to "may this flow pass?", with the reason.
public struct Decision: Hashable, Sendable {
    public var verdict: FlowVerdict
    public var from: Endpoint
    public var to: Endpoint
    /// The rule that allowed the flow, if one did.
    public var rule: AllowRule?
    /// Why, in words.
    public var reason: String
    /// A deny with an end in an audit zone: the packet passes and is reported as `audit`.
    public var audited: Bool = false

    /// Whether the packet gets through: allowed, or denied but audited.
    public var passes: Bool { verdict == .allow || audited }

    /// `allow`, `deny`, or `deny (audited: passes)`.
    public var verdictText: String { audited ? "deny (audited: passes)" : verdict.rawValue }
}

/// Longest-prefix classification of addresses into zones.
public struct Classifier: Sendable {
    /// For each family, prefix length → (network address → zone), longest lengths first.
    private let tables: [AddressFamily: [(length: Int, zones: [UInt128: String])]]

    public init(_ policy: Policy) {
        var byLength: [AddressFamily: [Int: [UInt128: String]]] = [:]
        for z in policy.zones {
            for m in z.members {
                byLength[m.value.family, default: [:]][m.value.length, default: [:]][m.value.first] = z.name
            }
        }
        tables = byLength.mapValues { lengths in lengths.sorted { $0.key > $1.key }.map { ($0.key, $0.value) } }
    }

    /// The zone of the longest prefix containing the address, or nil.
    public func zone(of family: AddressFamily, _ address: UInt128) -> String? {
        for (length, zones) in tables[family] ?? [] {
            let hostBits = family.bits - length
            let mask: UInt128 = hostBits == 128 ? 0 : ~((UInt128(1) << UInt128(hostBits)) - 1)
            if let z = zones[address & mask] { return z }
        }
        return nil
    }
}

/// The policy's meaning, evaluated directly: what `explain` and `test` report.
///
/// Tests prove it agrees with the compiled rule set packet by packet.
public struct Evaluator: Sendable {
    public let policy: Policy
    public let classifier: Classifier
    /// Units, cgroups, users and interfaces → zones.
    public let identities: IdentityClassifier
    private let rulesByPair: [Pair: [Int]]
    private let auditedZones: Set<String>

    struct Pair: Hashable {
        var from: Endpoint
        var to: Endpoint
    }

    /// `users` looks up the user names a query gives that the policy does not (`user:root`
    /// where the policy says `users: [0]`), as the kernel, which sees uids, would classify them.
    public init(_ policy: Policy, users: UserLookup? = nil) {
        self.policy = policy
        self.classifier = Classifier(policy)
        self.identities = IdentityClassifier(policy, users: users)
        var index: [Pair: [Int]] = [:]
        for (i, r) in policy.rules.enumerated() {
            for f in r.from { for t in r.to { index[Pair(from: f, to: t), default: []].append(i) } }
        }
        rulesByPair = index
        auditedZones = Set(policy.zones.filter { policy.settings.audit || $0.audit }.map(\.name))
    }

    /// The endpoint an address classifies into, at a hook, on the given side.
    public func classify(_ address: IPPrefix, isSource: Bool, hook: HookContext) -> Endpoint {
        if let z = classifier.zone(of: address.family, address.address) { return .zone(z) }
        switch (hook, isSource) {
        case (.input, false), (.output, true): return .host
        default: return .world
        }
    }

    /// Resolves a party to an endpoint, in the order the kernel does: socket cgroup (deepest
    /// wins), user (senders only), address (longest prefix), interface, then host or world.
    public func endpoint(_ party: Party, isSource: Bool, hook: HookContext) -> Endpoint {
        switch party {
        case .endpoint(let e): e
        case .address(let a): classify(a, isSource: isSource, hook: hook)
        case .unit(let u): identities.zone(ofUnit: u).map(Endpoint.zone) ?? .host
        case .cgroup(let c): identities.zone(ofCgroup: c).map(Endpoint.zone) ?? .host
        // A user is only a sender: the receiving end has a socket, so no user decides it.
        case .user(let u): (isSource ? identities.zone(ofUser: u).map(Endpoint.zone) : nil) ?? .host
        case .interface(let i): identities.zone(ofInterface: i).map(Endpoint.zone) ?? .world
        }
    }

    /// The decision for one concrete flow between two endpoints.
    public func decide(from: Endpoint, to: Endpoint, flow: Flow) -> Decision {
        markAudit(enforcedDecision(from: from, to: to, flow: flow))
    }

    /// The decision for a port spec: allowed when the rules for the pair admit all of it.
    public func decide(from: Endpoint, to: Endpoint, spec: PortSpec) -> Decision {
        markAudit(enforcedDecision(from: from, to: to, spec: spec))
    }

    /// Whether the endpoint is a zone in audit mode.
    public func isAudited(_ e: Endpoint) -> Bool {
        if case .zone(let z) = e { return auditedZones.contains(z) }
        return false
    }

    /// A deny with an end in an audit zone becomes an audited deny: it passes, and is reported.
    func markAudit(_ d: Decision) -> Decision {
        guard d.verdict == .deny, isAudited(d.from) || isAudited(d.to) else { return d }
        var out = d
        out.audited = true
        let zone = isAudited(d.from) ? d.from : d.to
        out.reason += "; zone '\(zone)' is in audit mode, so the packet passes and is reported"
        return out
    }

    /// The decision as if no zone were in audit mode.
    public func enforcedDecision(from: Endpoint, to: Endpoint, flow: Flow) -> Decision {
        if !from.isZone && !to.isZone {
            return Decision(verdict: .allow, from: from, to: to, rule: nil,
                            reason: "neither end is in a zone; zonewall does not govern \(from) → \(to)")
        }
        for i in rulesByPair[Pair(from: from, to: to)] ?? [] {
            let r = policy.rules[i]
            if r.ports.contains(where: { $0.admits(flow) }) {
                return Decision(verdict: .allow, from: from, to: to, rule: r, reason: "allowed by the rule at \(r.location)")
            }
        }
        return Decision(verdict: .deny, from: from, to: to, rule: nil, reason: "no allow rule covers \(from) → \(to)")
    }

    /// The decision for one concrete flow seen at `hook`: on the input hook, `settings.failsafe`
    /// ports are open whatever the zones.
    public func decide(from: Endpoint, to: Endpoint, flow: Flow, hook: HookContext) -> Decision {
        if hook == .input, let spec = policy.settings.failsafe.first(where: { $0.admits(flow) }) {
            return Decision(verdict: .allow, from: from, to: to, rule: nil, reason: "failsafe port \(spec) to this host")
        }
        return decide(from: from, to: to, flow: flow)
    }

    /// The decision for a port spec as if no zone were in audit mode.
    func enforcedDecision(from: Endpoint, to: Endpoint, spec: PortSpec) -> Decision {
        if !from.isZone && !to.isZone {
            return Decision(verdict: .allow, from: from, to: to, rule: nil,
                            reason: "neither end is in a zone; zonewall does not govern \(from) → \(to)")
        }
        let rules = (rulesByPair[Pair(from: from, to: to)] ?? []).map { policy.rules[$0] }
        if let r = rules.first(where: { $0.ports.contains { spec.isCovered(by: $0) } }) {
            return Decision(verdict: .allow, from: from, to: to, rule: r, reason: "allowed by the rule at \(r.location)")
        }
        // A port range may be covered by several rules together.
        if case .ports(let proto, let range) = spec {
            var uncovered = [range]
            var decisive: AllowRule?
            for r in rules {
                for case .ports(let p, let s) in r.ports where p == proto {
                    let before = uncovered
                    uncovered = uncovered.flatMap { Self.subtract(s, from: $0) }
                    if uncovered != before && decisive == nil { decisive = r }
                }
            }
            if uncovered.isEmpty, let decisive {
                return Decision(verdict: .allow, from: from, to: to, rule: decisive,
                                reason: "allowed by several rules together, first at \(decisive.location)")
            }
        }
        let partial = rules.contains { $0.ports.contains { p in Self.overlaps(spec, p) } }
        return Decision(verdict: .deny, from: from, to: to, rule: nil,
                        reason: partial ? "allow rules for \(from) → \(to) admit only part of \(spec)"
                                        : "no allow rule covers \(from) → \(to) \(spec)")
    }

    /// The decision for an `explain` query or an expectation, seen on the forward hook unless a
    /// side names `host` (then the matching local hook applies).
    ///
    /// A local process (`unit:`, `cgroup:`, `user:`) as the sender means output, as the receiver
    /// input; both at once is local-to-local traffic, governed as the pair of their zones.
    public func decide(from: Party, to: Party, spec: PortSpec) -> Decision {
        let toHost = to == .endpoint(.host) || to.isLocalProcess
        let fromHost = from == .endpoint(.host) || from.isLocalProcess
        let hook: HookContext = toHost && !fromHost ? .input : fromHost && !toHost ? .output : toHost ? .input : .forward
        let source = endpoint(from, isSource: true, hook: fromHost ? .output : hook)
        if toHost, let f = policy.settings.failsafe.first(where: { spec.isCovered(by: $0) }) {
            return Decision(verdict: .allow, from: source, to: endpoint(to, isSource: false, hook: .input), rule: nil,
                            reason: "failsafe port \(f) to this host")
        }
        return decide(from: source, to: endpoint(to, isSource: false, hook: toHost ? .input : hook), spec: spec)
    }

    static func subtract(_ s: ClosedRange<UInt16>, from r: ClosedRange<UInt16>) -> [ClosedRange<UInt16>] {
        guard s.overlaps(r) else { return [r] }
        var out: [ClosedRange<UInt16>] = []
        if r.lowerBound < s.lowerBound { out.append(r.lowerBound...(s.lowerBound - 1)) }
        if r.upperBound > s.upperBound { out.append((s.upperBound + 1)...r.upperBound) }
        return out
    }

    static func overlaps(_ a: PortSpec, _ b: PortSpec) -> Bool {
        switch (a, b) {
        case (.any, _), (_, .any): true
        case (.icmpEcho, .icmpEcho): true
        case (.ports(let p, let r), .ports(let q, let s)): p == q && r.overlaps(s)
        case (.ports(let p, _), .wholeProtocol(let q)), (.wholeProtocol(let p), .ports(let q, _)),
             (.wholeProtocol(let p), .wholeProtocol(let q)): p == q
        default: false
        }
    }
}

/// Which zone a unit, cgroup, user or interface belongs to, as the kernel would classify it.
public struct IdentityClassifier: Sendable {
    private var exactUnits: [String: String] = [:]
    private var unitGlobs: [(pattern: String, zone: String)] = []
    private var cgroups: [String: String] = [:]
    /// By `userKey`: the uid where it is known, so that `root` and `0` are one user.
    private var users: [String: String] = [:]
    private let userIDs: [String: UInt32]
    private let lookup: UserLookup?
    private var interfaces: [(pattern: String, zone: String)] = []

    public init(_ policy: Policy, users lookup: UserLookup? = nil) {
        userIDs = policy.userIDs
        self.lookup = lookup
        for z in policy.zones {
            for u in z.units {
                if Glob.isGlob(u.value) { unitGlobs.append((u.value, z.name)) } else { exactUnits[u.value] = z.name }
            }
            for c in z.cgroups { cgroups[c.value] = z.name }
            for u in z.users { users[userKey(u.value)] = z.name }
            for i in z.interfaces { interfaces.append((i.value, z.name)) }
        }
        // The most specific wildcard first: `veth-b*` decides before `veth*`, as the longest
        // interval would in the kernel.
        interfaces.sort { ($0.pattern.hasSuffix("*") ? 0 : 1, $0.pattern.count) > ($1.pattern.hasSuffix("*") ? 0 : 1, $1.pattern.count) }
    }

    /// The zone of a cgroup directory named `name` (a unit), or nil.
    public func zone(ofUnit name: String) -> String? {
        if let z = exactUnits[name] { return z }
        return unitGlobs.first { Glob.matches($0.pattern, name) }?.zone
    }

    /// The zone of a process in the cgroup at `path`: the deepest ancestor-or-self named by a zone.
    public func zone(ofCgroup path: String) -> String? {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        while !parts.isEmpty {
            if let z = cgroups["/" + parts.joined(separator: "/")] { return z }
            if let z = zone(ofUnit: parts.last!) { return z }
            parts.removeLast()
        }
        return nil
    }

    /// The zone of a local user, a name or a uid: by uid where the name resolves.
    public func zone(ofUser user: String) -> String? { users[userKey(user)] }

    private func userKey(_ user: String) -> String {
        if let uid = UInt32(user) ?? userIDs[user] ?? lookup?(user) { return "uid \(uid)" }
        return "name \(user)"
    }

    /// The zone of an interface name.
    public func zone(ofInterface name: String) -> String? {
        interfaces.first { IdentityNames.interface($0.pattern, matches: name) }?.zone
    }
}
