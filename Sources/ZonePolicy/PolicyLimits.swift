/// Bounds on policy input, so that a hostile or broken policy is refused with a diagnostic
/// instead of taking the host's memory or the kernel's.
///
/// The defaults are about ten times the 10,000-zone benchmark policy of `scripts/gen-policy.py`
/// (10,000 zones, 100,000 members, 20,000 rules, 4 MB in 14 files).
public struct PolicyLimits: Hashable, Sendable {
    /// `*.yaml`/`*.yml` files in the policy directory.
    public var files = 1_000
    /// Bytes in one policy file.
    public var bytesPerFile = 16 << 20
    /// Bytes in all policy files together.
    public var totalBytes = 64 << 20
    /// Nesting of YAML collections in one document (real policies use 5).
    public var depth = 32
    /// Zones in the whole policy.
    public var zones = 100_000
    /// Members (addresses and prefixes) of all zones together.
    public var members = 1_000_000
    /// Allow rules in the whole policy.
    public var rules = 200_000
    /// Port specs in one allow rule.
    public var portsPerRule = 1_024

    /// The documented defaults.
    public static let standard = PolicyLimits()

    /// The defaults; change single fields for tests.
    public init() {}
}

extension Int {
    /// `16 MiB`, `1.5 KiB`, `900 bytes`: for limit messages.
    var byteCount: String {
        if self >= 1 << 20 && self % (1 << 20) == 0 { return "\(self >> 20) MiB" }
        if self >= 1 << 10 && self % (1 << 10) == 0 { return "\(self >> 10) KiB" }
        return "\(self) bytes"
    }
}

extension PolicyLimits {
    /// An error at the first zone, member and rule past its limit, and at each rule with too many ports.
    func violations(in fragments: [FileFragment]) -> [Diagnostic] {
        var out: [Diagnostic] = []
        var zones = 0, members = 0, rules = 0
        var zonesReported = false, membersReported = false, rulesReported = false
        for fragment in fragments {
            for zone in fragment.zones {
                zones += 1
                if zones > self.zones && !zonesReported {
                    zonesReported = true
                    out.append(.error(zone.location, "zone '\(zone.name)' is past the limit of \(self.zones) zones in a policy"))
                }
                let before = members
                members += zone.members.count
                if members > self.members && !membersReported {
                    membersReported = true
                    let past = zone.members[self.members - before]
                    out.append(.error(past.location, "member \(past.value) of zone '\(zone.name)' is past the limit of \(self.members) members in a policy"))
                }
            }
            for rule in fragment.rules {
                rules += 1
                if rules > self.rules && !rulesReported {
                    rulesReported = true
                    out.append(.error(rule.location, "allow rule past the limit of \(self.rules) rules in a policy"))
                }
                if rule.ports.count > portsPerRule {
                    out.append(.error(rule.location, "allow rule lists \(rule.ports.count) ports, more than the limit of \(portsPerRule)",
                                      hint: "use port ranges (tcp/8000-8999)"))
                }
            }
        }
        return out
    }
}
