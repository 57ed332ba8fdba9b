import ZonePolicy

/// What a policy change means: flows opened and closed, members and zones added and removed.
///
/// Computed from the two policies' meaning, so reordering or splitting rules, respelling port
/// ranges, relisting prefixes and renaming files change nothing.
public struct PolicyDiff: Sendable {
    /// Traffic between two endpoints that one side admits and the other does not.
    public struct Flow: Sendable, Comparable {
        /// From where to where.
        public var pair: EndpointPair
        /// What changed, in the policy language.
        public var access: Access
        /// The rules responsible: in the new policy for an opened flow, in the old for a closed one.
        public var rules: [AllowRule]
        /// The part of `access` that `settings.failsafe` admits (a zone → host flow), not a rule.
        public var failsafe: Access = .none

        public var from: Endpoint { pair.from }
        public var to: Endpoint { pair.to }
        public var ports: [String] { access.specs }

        public static func < (a: Self, b: Self) -> Bool { a.pair < b.pair }
        public static func == (a: Self, b: Self) -> Bool { a.pair == b.pair && a.access == b.access }
    }

    /// A member of a zone: an address or prefix (identities, once zones have them).
    public struct Member: Hashable, Sendable, Comparable {
        /// The zone.
        public var zone: String
        /// An address or prefix, as the policy language writes it.
        public var member: String
        /// Orders addresses numerically, not as text.
        var order: IPPrefix?

        public static func < (a: Self, b: Self) -> Bool {
            if a.zone != b.zone { return a.zone < b.zone }
            switch (a.order, b.order) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a.member < b.member
            }
        }
    }

    /// Addresses that changed zone (or left every zone, or joined one): their traffic now follows
    /// the rules of their new zone (or `world`), so it changes even where no rule did.
    public struct MovedFlow: Sendable, Comparable {
        /// The addresses, as the policy language writes them.
        public var members: [String]
        /// Their zone before, or `world`.
        public var was: Endpoint
        /// Their zone now, or `world`.
        public var now: Endpoint
        /// The other end of the traffic: its addresses' zone now (or `world`, or `host`).
        public var peer: Endpoint
        /// Where the other end's addresses moved too (a zone renamed, merged): their zone before.
        public var peerWas: Endpoint?
        /// True: from the addresses to `peer`; false: from `peer` to them.
        public var outbound: Bool
        /// What changed, in the policy language.
        public var access: Access

        public var ports: [String] { access.specs }

        /// The other end in words: `d`, or `d (was b)`.
        public var peerLabel: String { peerWas.map { "\(peer) (was \($0))" } ?? peer.description }

        public static func < (a: Self, b: Self) -> Bool {
            (a.members.first ?? "", a.peer.description, a.outbound ? 0 : 1) < (b.members.first ?? "", b.peer.description, b.outbound ? 0 : 1)
        }
        public static func == (a: Self, b: Self) -> Bool {
            a.members == b.members && a.peer == b.peer && a.peerWas == b.peerWas && a.outbound == b.outbound && a.access == b.access
        }
    }

    /// Traffic allowed now and denied before, by pair, sorted.
    public var opened: [Flow] = []
    /// Traffic allowed before and denied now, by pair, sorted.
    public var closed: [Flow] = []
    /// Traffic of moved addresses (`MovedFlow`) allowed now and denied before.
    public var openedForMoved: [MovedFlow] = []
    /// Traffic of moved addresses allowed before and denied now.
    public var closedForMoved: [MovedFlow] = []
    /// Addresses a zone gained, sorted by zone then address.
    public var membersAdded: [Member] = []
    /// Addresses a zone lost, sorted by zone then address.
    public var membersRemoved: [Member] = []
    /// Zones the new policy adds, sorted.
    public var zonesAdded: [String] = []
    /// Zones the new policy removes, sorted.
    public var zonesRemoved: [String] = []
    /// Failsafe ports the new policy adds: open to this host from every zone and `world`.
    public var failsafeOpened: Access = .none
    /// Failsafe ports the new policy removes.
    public var failsafeClosed: Access = .none
    /// Where the new policy's `settings` are written (for opened failsafe ports).
    public var newSettingsLocation: SourceLocation?
    /// Where the old policy's `settings` are written (for closed failsafe ports).
    public var oldSettingsLocation: SourceLocation?
    /// Zones put in audit mode, sorted: what the policy denies to or from them now passes, logged.
    /// An opening of every denied flow with the zone at one end, kept per zone (not per pair).
    public var auditAdded: [String] = []
    /// Zones of both policies taken out of audit mode, sorted: their denied traffic is denied again.
    public var auditRemoved: [String] = []

    /// True when the meaning did not change.
    public var isEmpty: Bool {
        opened.isEmpty && closed.isEmpty && membersAdded.isEmpty && membersRemoved.isEmpty && zonesAdded.isEmpty && zonesRemoved.isEmpty
            && failsafeOpened.isEmpty && failsafeClosed.isEmpty && auditAdded.isEmpty && auditRemoved.isEmpty && settingsChanged.isEmpty
    }

    /// A setting whose value changed (failsafe ports and audit mode have sections of their own):
    /// what denied packets meet, whether they are logged and where, whether a change cuts the
    /// established flows it denies, the mark field.
    public struct SettingChange: Sendable, Hashable {
        public var key: String
        public var was: String
        public var now: String
    }

    /// Settings changed, in the order of the keys table.
    public var settingsChanged: [SettingChange] = []

    static func settingValues(_ s: Settings) -> [(String, String)] {
        [("denied", s.denied.rawValue), ("log_denied", "\(s.logDenied)"), ("log_to", s.logTo.rawValue),
         ("log_group", "\(s.logGroup)"), ("log_rate", "\(s.logRate)"), ("revoke_established", "\(s.revokeEstablished)"),
         ("ct_mark_bits", "0x" + String(s.ctMarkBits, radix: 16))]
    }

    /// Whether the change lets through traffic that did not pass before: opened flows, failsafe
    /// ports or audit mode.
    public var opens: Bool { !opened.isEmpty || !openedForMoved.isEmpty || !failsafeOpened.isEmpty || !auditAdded.isEmpty }

    /// The difference from `old` to `new`.
    public init(from old: Policy, to new: Policy) {
        self.init(from: old, Reachability(old), to: new, Reachability(new))
    }

    /// The difference, with reachability models already built.
    public init(from old: Policy, _ before: Reachability, to new: Policy, _ after: Reachability) {
        var pairs = Set(before.accessByPair.keys)
        pairs.formUnion(after.accessByPair.keys)
        for pair in pairs {
            let a = before.access(pair), b = after.access(pair)
            if a == b { continue }
            let gained = b.subtracting(a), lost = a.subtracting(b)
            if !gained.isEmpty {
                opened.append(Flow(pair: pair, access: gained, rules: after.rules(for: pair, admitting: gained),
                                   failsafe: after.failsafeAccess(pair, within: gained)))
            }
            if !lost.isEmpty {
                closed.append(Flow(pair: pair, access: lost, rules: before.rules(for: pair, admitting: lost),
                                   failsafe: before.failsafeAccess(pair, within: lost)))
            }
        }
        opened.sort()
        closed.sort()
        failsafeOpened = after.failsafe.subtracting(before.failsafe)
        failsafeClosed = before.failsafe.subtracting(after.failsafe)
        newSettingsLocation = new.settings.location
        oldSettingsLocation = old.settings.location
        settingsChanged = zip(Self.settingValues(old.settings), Self.settingValues(new.settings)).compactMap { a, b in
            a.1 == b.1 ? nil : SettingChange(key: a.0, was: a.1, now: b.1)
        }

        let oldNames = Set(old.zones.map(\.name)), newNames = Set(new.zones.map(\.name))
        zonesAdded = newNames.subtracting(oldNames).sorted()
        zonesRemoved = oldNames.subtracting(newNames).sorted()
        auditAdded = after.auditedZones.subtracting(before.auditedZones).sorted()
        // A removed zone's traffic is gone with it; only zones still there are enforced again.
        auditRemoved = before.auditedZones.subtracting(after.auditedZones).intersection(newNames).sorted()

        let m0 = Membership(old), m1 = Membership(new)
        movedFlows(Membership.pieces(from: m0, to: m1, unchanged: true), before, after, endpoints: oldNames.union(newNames))
        for zone in oldNames.union(newNames) {
            let r0 = m0.ranges[zone] ?? [], r1 = m1.ranges[zone] ?? []
            if r0 == r1 { continue }
            for r in Membership.subtract(r1, r0) { membersAdded += r.prefixes.map { Member(zone: zone, member: $0.description, order: $0) } }
            for r in Membership.subtract(r0, r1) { membersRemoved += r.prefixes.map { Member(zone: zone, member: $0.description, order: $0) } }
        }
        // Identities are names, not address ranges: a plain set difference per zone.
        let ids0 = Dictionary(uniqueKeysWithValues: old.zones.map { ($0.name, Set(Membership.identities(of: $0))) })
        let ids1 = Dictionary(uniqueKeysWithValues: new.zones.map { ($0.name, Set(Membership.identities(of: $0))) })
        for zone in oldNames.union(newNames) {
            let i0 = ids0[zone] ?? [], i1 = ids1[zone] ?? []
            membersAdded += i1.subtracting(i0).map { Member(zone: zone, member: $0) }
            membersRemoved += i0.subtracting(i1).map { Member(zone: zone, member: $0) }
        }
        membersAdded.sort()
        membersRemoved.sort()
    }

    /// The traffic of addresses whose zone changed, against every other end, address by
    /// address: what their old zone (or `world`) was allowed towards the other end's old zone
    /// before, against what their new zone is allowed towards the other end's new zone now. So
    /// renaming zones `a`, `b` to `c`, `d` changes nothing between their addresses. Traffic
    /// between two unzoned ends is not zonewall's to decide: it passes, on both sides.
    private mutating func movedFlows(_ pieces: [Membership.Move], _ before: Reachability, _ after: Reachability, endpoints: Set<String>) {
        func endpoint(_ zone: String?) -> Endpoint { zone.map(Endpoint.zone) ?? .world }
        // The other ends: address pieces by (zone before, zone now), zones of identities only,
        // the rest of the world and this host.
        var peers: [(was: Endpoint, now: Endpoint)] = []
        var seen = Set<[String]>()
        for p in pieces where seen.insert([p.was ?? "", p.now ?? ""]).inserted { peers.append((endpoint(p.was), endpoint(p.now))) }
        let owning = Set(pieces.flatMap { [$0.was, $0.now].compactMap { $0 } })
        for z in endpoints.sorted() where !owning.contains(z) { peers.append((.zone(z), .zone(z))) }
        peers += [(.world, .world), (.host, .host)]
        func effective(_ r: Reachability, _ pair: EndpointPair) -> Access { pair.isGoverned ? r.access(pair) : .everything }
        for move in pieces where move.was != move.now {
            let was = endpoint(move.was), now = endpoint(move.now)
            let members = move.ranges.flatMap(\.prefixes).map(\.description)
            // One address and itself: no traffic through the firewall to speak of.
            let single = move.ranges.count == 1 && move.ranges[0].first == move.ranges[0].last
            for peer in peers where !(single && peer.was == was && peer.now == now) {
                // Between two moved groups, each flow once: from the moving side.
                let directions = peer.was == peer.now ? [true, false] : [true]
                for outbound in directions {
                    let a = effective(before, outbound ? EndpointPair(from: was, to: peer.was) : EndpointPair(from: peer.was, to: was))
                    let b = effective(after, outbound ? EndpointPair(from: now, to: peer.now) : EndpointPair(from: peer.now, to: now))
                    if a == b { continue }
                    let gained = b.subtracting(a), lost = a.subtracting(b)
                    let peerWas = peer.was == peer.now ? nil : peer.was
                    if !gained.isEmpty {
                        openedForMoved.append(MovedFlow(members: members, was: was, now: now, peer: peer.now, peerWas: peerWas,
                                                        outbound: outbound, access: gained))
                    }
                    if !lost.isEmpty {
                        closedForMoved.append(MovedFlow(members: members, was: was, now: now, peer: peer.now, peerWas: peerWas,
                                                        outbound: outbound, access: lost))
                    }
                }
            }
        }
        openedForMoved.sort()
        closedForMoved.sort()
    }
}
