import ZonePolicy

/// An ordered pair of endpoints: traffic from `from` to `to`.
public struct EndpointPair: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var from: Endpoint
    public var to: Endpoint

    /// Traffic from `from` to `to`.
    public init(from: Endpoint, to: Endpoint) {
        self.from = from
        self.to = to
    }

    /// Whether zonewall decides this pair's traffic: at least one end is a zone.
    public var isGoverned: Bool { from.isZone || to.isZone }

    public var description: String { "\(from) → \(to)" }

    public static func < (a: Self, b: Self) -> Bool {
        (a.from.description, a.to.description) < (b.from.description, b.to.description)
    }
}

/// The policy's meaning as reachability: for each pair of endpoints that a rule names, what
/// traffic is admitted and by which rules; what `settings.failsafe` opens to this host; and which
/// zones are in audit mode (their denied traffic passes, logged).
///
/// Only pairs that rules name are stored (every other governed pair admits nothing), plus
/// zone → host for every zone when there are failsafe ports, so the model grows with the rules
/// and the zones, not with zones². Audit mode is kept per zone for the same reason: it lets
/// through every denied pair with that zone at one end.
public struct Reachability: Sendable {
    /// What each governed pair admits; pairs that admit nothing are absent.
    public private(set) var accessByPair: [EndpointPair: Access] = [:]
    /// The rules naming each pair, in policy order, with what each admits.
    public private(set) var rulesByPair: [EndpointPair: [AllowRule]] = [:]
    /// What `settings.failsafe` admits to this host from every zone and `world`, whatever the rules.
    public private(set) var failsafe: Access = .none
    /// Zones in audit mode (their own `audit:` or `settings: audit: true`).
    public private(set) var auditedZones: Set<String> = []

    public init(_ policy: Policy) {
        failsafe = Access(policy.settings.failsafe)
        auditedZones = Set(policy.zones.filter { policy.settings.audit || $0.audit }.map(\.name))
        if !failsafe.isEmpty {
            // The input hook accepts failsafe ports before any zone is looked at (Evaluator.decide(…hook:)).
            for z in policy.zones { accessByPair[EndpointPair(from: .zone(z.name), to: .host)] = failsafe }
        }
        for r in policy.rules {
            let a = Access(r.ports)
            for f in r.from {
                for t in r.to {
                    let pair = EndpointPair(from: f, to: t)
                    // world → host and the like are not zonewall's to decide: a rule there changes nothing.
                    guard pair.isGoverned else { continue }
                    accessByPair[pair, default: .none].formUnion(a)
                    rulesByPair[pair, default: []].append(r)
                }
            }
        }
    }

    /// What the pair admits (nothing for a pair no rule names).
    public func access(_ pair: EndpointPair) -> Access { accessByPair[pair] ?? .none }

    /// What of `part` the pair admits through `settings.failsafe` rather than a rule.
    public func failsafeAccess(_ pair: EndpointPair, within part: Access) -> Access {
        guard pair.to == .host, pair.from.isZone else { return .none }
        return part.intersection(failsafe)
    }

    /// Whether an end of the pair is a zone in audit mode: what the pair does not admit passes, logged.
    public func isAudited(_ pair: EndpointPair) -> Bool { isAudited(pair.from) || isAudited(pair.to) }

    /// Whether the endpoint is a zone in audit mode.
    public func isAudited(_ e: Endpoint) -> Bool {
        if case .zone(let z) = e { return auditedZones.contains(z) }
        return false
    }

    /// The rules for `pair` that admit some of `part`, in policy order: the ones responsible for it.
    public func rules(for pair: EndpointPair, admitting part: Access) -> [AllowRule] {
        (rulesByPair[pair] ?? []).filter { Access($0.ports).overlaps(part) }
    }

    /// Every pair that admits something, sorted.
    public var pairs: [EndpointPair] { accessByPair.keys.sorted() }
}
