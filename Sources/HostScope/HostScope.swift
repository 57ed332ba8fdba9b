import Ruleset
import ZonePolicy

/// What a host programs: everything (a router), or only what can involve its own addresses.
public enum HostScope: String, Sendable, Hashable, CaseIterable {
    /// The whole policy on the input, forward and output hooks (the default).
    case all
    /// Only rules with a local end, on the input and output hooks; no forward governance.
    case local
}

/// `--scope local`: the policy cut down to what this host's own traffic can meet. Pure: the
/// host's addresses are gathered before (`HostAddressSource`), as every host fact is.
///
/// On the input and output hooks one end of every packet is an address of this host, which
/// classifies into a *local* zone (a zone that holds one of the host's addresses, by longest
/// prefix, or an identity zone: a unit's, a cgroup's or a user's processes) or into `host`. So only the pairs of an allow rule with a local zone or `host` on
/// one side can ever match; the others are dropped. Every zone stays declared, with all its
/// members: a zone that no kept rule names is still denied towards this host rather than
/// becoming `world` (which `host` accepts ungoverned). Its members then cost only their entry
/// in the set of zoned addresses; its rule sets and source-map entries are gone.
public enum ScopeFilter {
    /// The zones that hold one of `addresses` (each address counted in its longest-prefix zone),
    /// and every identity zone (units, cgroups, users): its processes run on this host, so its
    /// traffic is this host's own whatever its addresses.
    public static func localZones(_ policy: Policy, addresses: [IPPrefix]) -> Set<String> {
        let classifier = Classifier(policy)
        return Set(addresses.compactMap { classifier.zone(of: $0.family, $0.address) })
            .union(policy.zones.filter(\.isLocal).map(\.name))
    }

    /// The policy with only the rule pairs that have a local zone or `host` on one side.
    public static func restrict(_ policy: Policy, toHostWith addresses: [IPPrefix]) -> Policy {
        let local = localZones(policy, addresses: addresses)
        func isLocal(_ e: Endpoint) -> Bool {
            switch e {
            case .host: true
            case .zone(let z): local.contains(z)
            case .world: false
            }
        }
        var rules: [AllowRule] = []
        for rule in policy.rules {
            let localFrom = rule.from.filter(isLocal), otherFrom = rule.from.filter { !isLocal($0) }
            let localTo = rule.to.filter(isLocal)
            // Pairs with a local source (any destination), then a local destination and a
            // non-local source: every qualifying pair once.
            if !localFrom.isEmpty {
                var r = rule; r.from = localFrom
                rules.append(r)
            }
            if !otherFrom.isEmpty && !localTo.isEmpty {
                var r = rule; r.from = otherFrom; r.to = localTo
                rules.append(r)
            }
        }
        var out = policy
        out.rules = rules
        out.expectations = []
        return out
    }

    /// The compiled table without the forward base chain: a scoped host governs only its own traffic.
    public static func withoutForward(_ table: Table) -> Table {
        var t = table
        t.chains.removeAll { $0.base?.hook == .forward }
        return t
    }
}
