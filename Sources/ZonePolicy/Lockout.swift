/// The lock-out pattern: a policy that governs SSH to this host from some zones and lets none
/// of them in. An operator in such a zone who applies it remotely cuts their own session.
public enum Lockout {
    /// The port whose loss locks an operator out.
    public static let ssh = PortSpec.ports(.tcp, 22...22)

    /// The zones from which `port` to this host is governed and denied (no rule, no failsafe).
    public static func deniedZones(_ policy: Policy, port: PortSpec = ssh) -> [String] {
        let evaluator = Evaluator(policy)
        return policy.zones.map(\.name).filter {
            evaluator.decide(from: .endpoint(.zone($0)), to: .endpoint(.host), spec: port).verdict == .deny
        }
    }

    /// One warning naming those zones (the first 10, then a count), at the first one's place.
    public static func warnings(_ policy: Policy) -> [Diagnostic] {
        let zones = deniedZones(policy)
        guard let first = zones.first, let location = policy.zone(named: first)?.location else { return [] }
        let named = zones.prefix(10).joined(separator: ", ") + (zones.count > 10 ? " and \(zones.count - 10) more" : "")
        return [.warning(location, "\(ssh) to this host is denied from zone(s) \(named): an operator connecting from there "
                         + "is locked out as soon as the policy is applied",
                         hint: "allow it (from: [\(zones.prefix(3).joined(separator: ", "))], to: host, ports: [tcp/22]), "
                             + "or keep it open whatever the zones with settings: {failsafe: [tcp/22]}")]
    }
}
