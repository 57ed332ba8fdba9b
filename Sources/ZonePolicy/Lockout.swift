/// The lock-out pattern: a policy that governs SSH to this host from some zones and lets none
/// of them in. An operator in such a zone who applies it remotely cuts their own session.
public enum Lockout {
    /// The port whose loss locks an operator out.
    public static let ssh = PortSpec.ports(.tcp, 22...22)

    /// The zones from which `port` to this host is governed and denied (no rule, no failsafe),
    /// among those an operator can connect from: zones with members or interfaces, not in
    /// audit mode (their denied traffic passes). Units, cgroups and users are this host's own
    /// processes, which no operator's session comes from: granting them SSH would be bad advice.
    public static func deniedZones(_ policy: Policy, port: PortSpec = ssh) -> [String] {
        let evaluator = Evaluator(policy)
        return policy.zones.filter { z in
            (!z.members.isEmpty || !z.interfaces.isEmpty) && !evaluator.isAudited(.zone(z.name)) && !z.ignores(.lockout)
        }.map(\.name).filter {
            evaluator.decide(from: .endpoint(.zone($0)), to: .endpoint(.host), spec: port).verdict == .deny
        }
    }

    /// Whether some zone may reach `port` on this host: then the policy chose who may, and the
    /// zones left out are least privilege, not a lock-out.
    public static func someZoneAdmitted(_ policy: Policy, port: PortSpec = ssh) -> Bool {
        let evaluator = Evaluator(policy)
        return policy.zones.contains {
            evaluator.decide(from: .endpoint(.zone($0.name)), to: .endpoint(.host), spec: port).verdict == .allow
        }
    }

    /// One warning naming those zones (the first 10, then a count), at the place of the one
    /// written first.
    public static func warnings(_ policy: Policy) -> [Diagnostic] {
        let zones = deniedZones(policy)
        guard let location = zones.compactMap({ policy.zone(named: $0)?.location }).min(), !someZoneAdmitted(policy) else { return [] }
        let named = zones.prefix(10).joined(separator: ", ") + (zones.count > 10 ? " and \(zones.count - 10) more" : "")
        return [.warning(location, "\(ssh) to this host is denied from zone(s) \(named): an operator connecting from there "
                         + "is locked out as soon as the policy is applied",
                         hint: "allow it from the zones operators connect from (from: [\(zones.prefix(10).joined(separator: ", "))\(zones.count > 10 ? ", …" : "")], to: host, ports: [tcp/22]), "
                             + "or keep it open whatever the zones with settings: {failsafe: [tcp/22]}; on a zone no operator "
                             + "connects from: lint: {ignore: [lockout], reason: \"…\"}")]
    }
}
