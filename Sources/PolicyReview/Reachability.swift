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
/// traffic is admitted and by which rules.
///
/// Only pairs that rules name are stored (every other governed pair admits nothing), so the
/// model grows with the rules, not with zones².
public struct Reachability: Sendable {
    /// What each governed pair admits; pairs that admit nothing are absent.
    public private(set) var accessByPair: [EndpointPair: Access] = [:]
    /// The rules naming each pair, in policy order, with what each admits.
    public private(set) var rulesByPair: [EndpointPair: [AllowRule]] = [:]

    public init(_ policy: Policy) {
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

    /// The rules for `pair` that admit some of `part`, in policy order: the ones responsible for it.
    public func rules(for pair: EndpointPair, admitting part: Access) -> [AllowRule] {
        (rulesByPair[pair] ?? []).filter { Access($0.ports).overlaps(part) }
    }

    /// Every pair that admits something, sorted.
    public var pairs: [EndpointPair] { accessByPair.keys.sorted() }
}
