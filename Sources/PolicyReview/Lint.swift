import ZonePolicy

/// Least-privilege lints on a valid policy, beyond the warnings loading already gives
/// (`empty-zone`, `unused-zone` and `covered` are reported by `PolicyLoader`).
public enum Lint {
    /// More ports of one protocol than this between two zones is a warning.
    public static let widePortLimit = 1_024

    /// The warnings for `world-open`, `wide-ports` and `every-zone`, skipping silenced ones.
    public static func check(_ policy: Policy) -> [Diagnostic] {
        var out: [Diagnostic] = []
        let allZones = Set(policy.zones.map(\.name))
        for r in policy.rules {
            // Towards zones only: world → host or world is not governed (the resolver says so).
            // By what the rule admits, not how it is spelled: `tcp/1-65535` is `tcp`, and
            // `[tcp/1-32767, tcp/32768-65535]` is too.
            if r.from.contains(.world) && r.to.contains(where: \.isZone) && !r.ignores(.worldOpen) {
                if r.ports.contains(.any) {
                    out.append(.warning(r.location, "this rule lets the whole world send any traffic",
                                        hint: "name the ports the service needs, e.g. tcp/443; " + LintKind.worldOpen.silenceHint))
                } else {
                    let access = Access(r.ports)
                    for p in TransportProtocol.allCases.sorted() {
                        let n = access.ports(p).count
                        guard n > widePortLimit else { continue }
                        let what = n >= 65_535 ? "every \(p) port" : "\(n) \(p) ports (more than \(widePortLimit))"
                        out.append(.warning(r.location, "this rule lets the whole world reach \(what)",
                                            hint: "name the ports the service needs, e.g. \(p)/443; " + LintKind.worldOpen.silenceHint))
                    }
                }
            }
            if !r.ignores(.widePorts) && r.from.contains(where: \.isZone) && r.to.contains(where: \.isZone) {
                let access = Access(r.ports)
                for p in TransportProtocol.allCases.sorted() {
                    let n = access.ports(p).count
                    guard n > widePortLimit else { continue }
                    out.append(.warning(r.location, "this rule opens \(n) \(p) ports between zones (more than \(widePortLimit))",
                                        hint: "open only the ports the services listen on; " + LintKind.widePorts.silenceHint))
                }
            }
            // Towards this host it is the usual shape (SSH, monitoring), and what the lock-out
            // warning asks for.
            if allZones.count >= 2 && !r.ignores(.everyZone) && r.to != [.host] {
                for (key, side) in [("from", r.from), ("to", r.to)] {
                    let zones = Set(side.compactMap { e -> String? in
                        if case .zone(let z) = e { return z }
                        return nil
                    })
                    guard zones == allZones else { continue }
                    out.append(.warning(r.location, "'\(key)' names every zone (\(allZones.count))",
                                        hint: "a rule for every zone is rarely least privilege (and a zone added later is not in it); list the zones that need it, or "
                                            + LintKind.everyZone.silenceHint))
                }
            }
        }
        return out
    }
}
