import HostIdentity
import ZoneCompiler
import ZonePolicy

/// The host's side of identity zones, resolved now: what `apply` and `plan` compile against.
struct GatheredHostFacts {
    var facts = HostFacts()
    /// A warning per unit, cgroup or user that resolved to nothing, at its place in the policy
    /// (`apply` prints them as `path:line:col: warning: …`, `plan` comments them).
    var missing: [Diagnostic] = []
    /// One line per unit or cgroup that resolved, with its path and id.
    var resolved: [String] = []

    /// Scans the cgroup2 hierarchy once (no inotify) and looks the users up.
    static func gather(_ policy: Policy) -> GatheredHostFacts {
        var out = GatheredHostFacts()
        let local = policy.zones.filter(\.isLocal)
        guard !local.isEmpty else { return out }
        var identities: [CgroupIdentity: [(zone: String, location: SourceLocation)]] = [:]
        for z in local {
            for u in z.units { identities[.unit(u.value), default: []].append((z.name, u.location)) }
            for c in z.cgroups { identities[.cgroup(c.value), default: []].append((z.name, c.location)) }
        }
        if !identities.isEmpty {
            guard let watcher = CgroupWatcher.current() else {
                let first = identities.values.flatMap { $0 }.map(\.location).min()
                out.missing.append(.warning(first ?? SourceLocation(path: "/proc/self/mountinfo", line: 0, column: 0),
                                            "no cgroup2 mount in /proc/self/mountinfo: units and cgroups resolve to nothing"))
                return out
            }
            let snapshot = watcher.snapshot(for: Set(identities.keys))
            for (identity, places) in identities.sorted(by: { $0.key < $1.key }) {
                let found = snapshot[identity] ?? []
                for place in places {
                    if found.isEmpty {
                        out.missing.append(.warning(place.location, "zone '\(place.zone)': \(identity) not found under \(watcher.root)",
                                                    hint: "it matches nothing until it appears"))
                    }
                    for c in found where c.level > IdentityNames.maxCgroupDepth {
                        out.missing.append(.warning(place.location, "zone '\(place.zone)': \(identity) is \(c.path), cgroup level \(c.level), "
                                                    + "deeper than the \(IdentityNames.maxCgroupDepth) levels zonewall matches",
                                                    hint: "its processes are not in the zone; name an ancestor cgroup instead"))
                    }
                    for c in found {
                        out.facts.cgroups[place.zone, default: []].append(.init(path: c.path, id: c.id, level: c.level))
                        out.resolved.append("zone '\(place.zone)': \(identity) is \(c.path) (cgroup id \(c.id), level \(c.level))")
                    }
                }
            }
        }
        for z in local {
            for u in z.users {
                if let uid = UserResolver.uid(u.value) {
                    out.facts.uids[z.name, default: []].append(uid)
                } else {
                    out.missing.append(.warning(u.location, "zone '\(z.name)': user '\(u.value)' does not resolve",
                                                hint: "it matches nothing until it exists"))
                }
            }
        }
        return out
    }
}
