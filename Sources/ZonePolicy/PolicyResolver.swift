/// Merges file fragments into one policy and runs the checks that span files.
struct PolicyResolver {
    let fragments: [FileFragment]
    var diagnostics: [Diagnostic] = []
    /// False when a file could not be read: it may declare the zones others name, so an unknown
    /// zone is counted in `uncheckedReferences` instead of reported.
    var checksReferences = true
    private(set) var uncheckedReferences = 0

    init(fragments: [FileFragment]) { self.fragments = fragments }

    static let reservedNames: Set = ["world", "host"]

    /// `[a-z][a-z0-9_-]{0,31}`
    static func isValidZoneName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first), s.unicodeScalars.count <= 32 else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }

    mutating func resolve(warnings: Bool = true) -> Policy {
        var zones: [String: Zone] = [:]
        for zone in fragments.flatMap(\.zones) {
            if Self.reservedNames.contains(zone.name) {
                diagnostics.append(.error(zone.location, "'\(zone.name)' is reserved and cannot name a zone",
                                          hint: "'world' is every address outside all zones and 'host' is this machine; pick another name"))
                continue
            }
            guard Self.isValidZoneName(zone.name) else {
                diagnostics.append(.error(zone.location, "invalid zone name '\(zone.name)'",
                                          hint: "zone names match [a-z][a-z0-9_-]{0,31}"))
                continue
            }
            // By index, here and in `endpoint`: `zones[name]` would copy the whole zone (a retain
            // of each of its arrays and strings) only to test that it is there.
            if let first = zones.index(forKey: zone.name) {
                diagnostics.append(.error(zone.location, "zone '\(zone.name)' is defined twice",
                                          hint: "first defined at \(zones.values[first].location)"))
                continue
            }
            zones[zone.name] = zone
        }

        // In the order written: the first of two listings is the one the other is reported against.
        let ordered = zones.values.sorted(by: { $0.location < $1.location })
        checkMembers(ordered)
        checkIdentities(ordered.filter { $0.isLocal || !$0.interfaces.isEmpty })

        var settings: Settings?
        for s in fragments.compactMap(\.settings) {
            if let first = settings, let firstLoc = first.location, let loc = s.location {
                diagnostics.append(.error(loc, "'settings' is given in more than one file", hint: "first given at \(firstLoc)"))
            } else {
                settings = s
            }
        }

        let rules = fragments.flatMap(\.rules).compactMap { resolve($0, zones: zones) }
        for ref in fragments.flatMap(\.namesOfBadRules) { _ = endpoint(ref, zones: zones) }
        let expectations = fragments.flatMap(\.expectations).compactMap { resolve($0, zones: zones) }
        let policy = Policy(zones: Array(zones.values), rules: rules, settings: settings ?? Settings(), expectations: expectations)
        checkMarkField(policy)
        if warnings && !diagnostics.hasErrors {
            warn(policy)
            warnUsersOnlyDestinations(zones)
        }
        return policy
    }

    /// The same unit, cgroup, user or interface in two zones (an error) or twice in one (a warning).
    /// Over `ordered`, the zones with identities in the order written.
    mutating func checkIdentities(_ ordered: [Zone]) {
        let kinds: [(String, KeyPath<Zone, [Located<String>]>)] = [
            ("unit", \.units), ("cgroup", \.cgroups), ("user", \.users), ("interface", \.interfaces),
        ]
        for (kind, path) in kinds {
            var first: [String: (zone: String, location: SourceLocation)] = [:]
            for zone in ordered {
                for item in zone[keyPath: path] {
                    guard let owner = first[item.value] else {
                        first[item.value] = (zone.name, item.location)
                        continue
                    }
                    if owner.zone == zone.name {
                        diagnostics.append(.warning(item.location, "\(kind) '\(item.value)' is listed twice in zone '\(zone.name)'",
                                                    hint: "first listed at \(owner.location)"))
                    } else {
                        diagnostics.append(.error(item.location, "\(kind) '\(item.value)' is in two zones, '\(owner.zone)' and '\(zone.name)'",
                                                  hint: "it is also listed at \(owner.location) (zone '\(owner.zone)'); \(kind == "interface" ? "an" : "a") \(kind) belongs to one zone"))
                    }
                }
            }
        }
    }

    /// Local zones are carried from output to input in a conntrack mark field: it must hold them all.
    mutating func checkMarkField(_ policy: Policy) {
        let local = policy.zones.filter(\.isLocal).count
        let settings = policy.settings
        guard local > settings.ctMarkCapacity else { return }
        let place = settings.ctMarkBitsLocation ?? settings.location ?? policy.zones.first(where: \.isLocal)!.location
        diagnostics.append(.error(place, "ct_mark_bits 0x\(String(settings.ctMarkBits, radix: 16)) holds \(settings.ctMarkCapacity) local zones, but the policy has \(local)",
                                  hint: "widen the field (each bit doubles it); keep clear of kube-proxy (0x4000, 0x8000), Calico (0xffff0000), Cilium (0x0f00)"))
    }

    /// A zone of only users as a rule's `to`: a user is only ever a sender, so the rule admits nothing there.
    mutating func warnUsersOnlyDestinations(_ zones: [String: Zone]) {
        let usersOnly = Set(zones.values.lazy.filter(\.isUsersOnly).map(\.name))
        guard !usersOnly.isEmpty else { return }
        for raw in fragments.flatMap(\.rules) {
            for ref in raw.to where usersOnly.contains(ref.name) {
                diagnostics.append(.warning(ref.location, "zone '\(ref.name)' has only users, and a user is only a sender",
                                            hint: "as 'to' it matches no packet; give the zone units, cgroups or addresses, or move it to 'from'"))
            }
        }
    }

    /// Duplicate members inside a zone and the same prefix in two zones.
    /// Over `ordered`, the zones in the order written.
    mutating func checkMembers(_ ordered: [Zone]) {
        // A member listed twice is found by sorting compact references to all members rather
        // than hashing them: at 100,000 members a dictionary of owners took 38 MB at its peak,
        // this takes 3 MB.
        struct Ref {
            var address: UInt128
            var length: Int32
            var family: Int32
            /// Index in `ordered`, and of the member in that zone: also the order of listing.
            var zone: Int32
            var member: Int32

            func samePrefix(as o: Ref) -> Bool { address == o.address && length == o.length && family == o.family }
            func precedes(_ o: Ref) -> Bool {
                (family, address, length, zone, member) < (o.family, o.address, o.length, o.zone, o.member)
            }
        }
        var refs: [Ref] = []
        refs.reserveCapacity(ordered.reduce(0) { $0 + $1.members.count })
        for (z, zone) in ordered.enumerated() {
            for (k, m) in zone.members.enumerated() {
                refs.append(Ref(address: m.value.address, length: Int32(m.value.length), family: m.value.family == .ipv4 ? 4 : 6,
                                zone: Int32(z), member: Int32(k)))
            }
        }
        refs.sort { $0.precedes($1) }
        var i = 0
        while i < refs.count {
            let first = refs[i]
            let owner = ordered[Int(first.zone)]
            let firstLocation = owner.members[Int(first.member)].location
            var j = i + 1
            while j < refs.count, refs[j].samePrefix(as: first) {
                let zone = ordered[Int(refs[j].zone)]
                let m = zone.members[Int(refs[j].member)]
                if owner.name == zone.name {
                    diagnostics.append(.warning(m.location, "\(m.value) is listed twice in zone '\(zone.name)'",
                                                hint: "first listed at \(firstLocation)"))
                } else {
                    diagnostics.append(.error(m.location, "\(m.value) is in two zones, '\(owner.name)' and '\(zone.name)'",
                                              hint: "it is also listed at \(firstLocation); an address belongs to one zone"))
                }
                j += 1
            }
            i = j
        }
    }

    mutating func endpoint(_ ref: NameRef, zones: [String: Zone]) -> Endpoint? {
        switch ref.name {
        case "world": return .world
        case "host": return .host
        default:
            if zones.index(forKey: ref.name) != nil { return .zone(ref.name) }
            guard checksReferences else {
                uncheckedReferences += 1
                return nil
            }
            let hint = Spelling.closest(to: ref.name, in: Array(zones.keys) + ["world", "host"]).map { "did you mean '\($0)'?" }
            diagnostics.append(.error(ref.location, "unknown zone '\(ref.name)'", hint: hint))
            return nil
        }
    }

    mutating func resolve(_ raw: FileFragment.RawRule, zones: [String: Zone]) -> AllowRule? {
        let from = raw.from.map { endpoint($0, zones: zones) }
        let to = raw.to.map { endpoint($0, zones: zones) }
        guard from.allSatisfy({ $0 != nil }), to.allSatisfy({ $0 != nil }) else { return nil }
        return AllowRule(from: from.map { $0! }, to: to.map { $0! }, ports: raw.ports, description: raw.description, location: raw.location,
                         lint: raw.lint)
    }

    mutating func resolve(_ raw: FileFragment.RawExpectation, zones: [String: Zone]) -> Expectation? {
        func party(_ p: PartyRef, isSource: Bool) -> Party? {
            switch p {
            case .address(let a, _): return .address(a)
            case .name(let n): return endpoint(n, zones: zones).map(Party.endpoint)
            case .identity(let party, let location):
                let problem: (message: String, hint: String)?
                switch party {
                case .unit(let u): problem = Glob.isGlob(u) ? ("'\(party)': an expectation names one unit, not a glob", "write the unit's name") : IdentityNames.unitProblem(u)
                case .cgroup(let c): problem = IdentityNames.cgroupProblem(c)
                case .user(let u):
                    problem = isSource ? IdentityNames.userProblem(u)
                        : ("'\(party)': a user is only a sender", "name the receiving zone, unit or address")
                case .interface(let i): problem = i.hasSuffix("*") ? ("'\(party)': an expectation names one interface, not a wildcard", "write the interface's name") : IdentityNames.interfaceProblem(i)
                default: problem = nil
                }
                if let problem {
                    diagnostics.append(.error(location, problem.message, hint: problem.hint))
                    return nil
                }
                if case .cgroup(let c) = party { return .cgroup(IdentityNames.normalizedCgroup(c)) }
                return party
            }
        }
        // Both ends are checked, so that each problem is reported.
        let from = party(raw.from, isSource: true), to = party(raw.to, isSource: false)
        guard let from, let to else { return nil }
        if case .address(let a) = from, case .address(let b) = to, a.family != b.family {
            diagnostics.append(.error(raw.location, "this expectation goes from an \(a.family == .ipv4 ? "IPv4" : "IPv6") address to an "
                                      + "\(b.family == .ipv4 ? "IPv4" : "IPv6") one: no packet does",
                                      hint: "write two addresses of one family (an IPv4-mapped ::ffff:a.b.c.d is IPv6)"))
            return nil
        }
        return Expectation(from: from, to: to, port: raw.port, verdict: raw.verdict, location: raw.location)
    }

    /// Empty zones, zones no rule mentions, and rules another rule already covers.
    mutating func warn(_ policy: Policy) {
        var mentioned = Set<String>()
        for r in policy.rules {
            for case .zone(let z) in r.from + r.to { mentioned.insert(z) }
        }
        for z in policy.zones {
            if z.isEmpty && !z.ignores(.emptyZone) {
                diagnostics.append(.warning(z.location, "zone '\(z.name)' has no members", hint: "it matches no traffic; " + LintKind.emptyZone.silenceHint))
            }
            if !mentioned.contains(z.name) && !z.ignores(.unusedZone) {
                diagnostics.append(.warning(z.location, "no allow rule mentions zone '\(z.name)'",
                                            hint: "all its traffic to and from other zones, world and host is denied; "
                                                + LintKind.unusedZone.silenceHint))
            }
        }
        // A rule between ungoverned ends only: the traffic it names is accepted with or without it.
        for r in policy.rules where !r.from.contains(where: \.isZone) && !r.to.contains(where: \.isZone) {
            diagnostics.append(.warning(r.location, "this allow rule has no effect: zonewall governs only traffic with a zone at one end, "
                                        + "and accepts traffic between world and host (and within either) whatever the rules",
                                        hint: "remove it; to restrict what reaches this host, put the senders in zones"))
        }
        // Index rules by each (from, to) pair so that the coverage check stays near-linear.
        var byPair: [Pair: [Int]] = [:]
        for (i, r) in policy.rules.enumerated() {
            for f in r.from { for t in r.to { byPair[Pair(from: f, to: t), default: []].append(i) } }
        }
        for (i, r) in policy.rules.enumerated() where !r.ignores(.covered) {
            guard let f = r.from.first, let t = r.to.first else { continue }
            for j in byPair[Pair(from: f, to: t)] ?? [] where j != i {
                let other = policy.rules[j]
                guard Self.covers(other, r) else { continue }
                // Two identical rules: only the later one is redundant.
                if Self.covers(r, other) && j > i { continue }
                diagnostics.append(.warning(r.location, "this allow rule is already covered by the rule at \(other.location)",
                                            hint: "remove it, or narrow the other rule; " + LintKind.covered.silenceHint))
                break
            }
        }
    }

    struct Pair: Hashable {
        var from: Endpoint
        var to: Endpoint
    }

    /// Whether `a` admits everything `b` admits.
    static func covers(_ a: AllowRule, _ b: AllowRule) -> Bool {
        Set(b.from).isSubset(of: a.from) && Set(b.to).isSubset(of: a.to)
            && b.ports.allSatisfy { p in a.ports.contains { p.isCovered(by: $0) } }
    }
}
