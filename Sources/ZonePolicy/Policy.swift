/// A value with the place it was written.
public struct Located<Value: Hashable & Sendable>: Hashable, Sendable {
    public var value: Value
    public var location: SourceLocation

    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }
}

/// One end of an allow rule: a zone, everything outside every zone (`world`), or this machine (`host`).
public enum Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    case zone(String)
    case world
    case host

    public var description: String {
        switch self {
        case .zone(let z): z
        case .world: "world"
        case .host: "host"
        }
    }

    public var isZone: Bool { if case .zone = self { true } else { false } }
}

/// An isolation zone: a named group of addresses, local services, users and interfaces.
public struct Zone: Hashable, Sendable {
    public var name: String
    public var description: String?
    public var members: [Located<IPPrefix>]
    /// Where the zone's name is written.
    public var location: SourceLocation
    /// Lints silenced on this zone (`lint:`).
    public var lint: LintIgnore?
    /// Audit mode: what the policy would deny to or from this zone passes and is reported.
    public var audit: Bool = false
    /// systemd unit names or globs, matched against cgroup directory names anywhere in the hierarchy.
    public var units: [Located<String>] = []
    /// cgroup v2 paths from the cgroup2 root, normalized (`/a/b`).
    public var cgroups: [Located<String>] = []
    /// Local users, by name or decimal uid, as written.
    public var users: [Located<String>] = []
    /// Interface names; a trailing `*` matches every name with that prefix.
    public var interfaces: [Located<String>] = []

    public init(name: String, description: String? = nil, members: [Located<IPPrefix>], location: SourceLocation,
                lint: LintIgnore? = nil, audit: Bool = false,
                units: [Located<String>] = [], cgroups: [Located<String>] = [],
                users: [Located<String>] = [], interfaces: [Located<String>] = []) {
        self.name = name
        self.description = description
        self.members = members
        self.location = location
        self.lint = lint
        self.audit = audit
        self.units = units
        self.cgroups = cgroups
        self.users = users
        self.interfaces = interfaces
    }

    /// Whether `kind` is silenced on this zone.
    public func ignores(_ kind: LintKind) -> Bool { lint?.kinds.contains(kind) == true }

    /// Whether the zone names local processes (units, cgroups or users): loopback between them is governed.
    public var isLocal: Bool { !units.isEmpty || !cgroups.isEmpty || !users.isEmpty }

    /// Whether the zone names units or cgroups.
    public var hasCgroups: Bool { !units.isEmpty || !cgroups.isEmpty }

    /// Whether the zone has nothing but users: it can only send.
    public var isUsersOnly: Bool { !users.isEmpty && members.isEmpty && units.isEmpty && cgroups.isEmpty && interfaces.isEmpty }

    /// Whether the zone has any member of any kind.
    public var isEmpty: Bool { members.isEmpty && units.isEmpty && cgroups.isEmpty && users.isEmpty && interfaces.isEmpty }
}

/// An allow rule: traffic from any of `from` to any of `to` matching any of `ports`.
public struct AllowRule: Hashable, Sendable {
    public var from: [Endpoint]
    public var to: [Endpoint]
    public var ports: [PortSpec]
    public var description: String?
    /// Where the rule's list item starts.
    public var location: SourceLocation
    /// Lints silenced on this rule (`lint:`).
    public var lint: LintIgnore?

    public init(from: [Endpoint], to: [Endpoint], ports: [PortSpec], description: String? = nil, location: SourceLocation,
                lint: LintIgnore? = nil) {
        self.from = from
        self.to = to
        self.ports = ports
        self.description = description
        self.location = location
        self.lint = lint
    }

    /// Whether `kind` is silenced on this rule.
    public func ignores(_ kind: LintKind) -> Bool { lint?.kinds.contains(kind) == true }
}

/// What happens to denied packets.
public enum DeniedAction: String, Hashable, Sendable {
    /// Silently discarded.
    case drop
    /// TCP reset, or ICMP port unreachable for everything else.
    case reject
}

/// Where logged packets go.
public enum LogTarget: String, Hashable, Sendable {
    /// An NFLOG group, read by `zonewall log` and the daemon.
    case nflog
    /// The kernel log (dmesg), prefix "zonewall denied " / "zonewall audit ".
    case kernel
}

/// Policy-wide settings.
public struct Settings: Hashable, Sendable {
    public var denied: DeniedAction = .drop
    /// Rate-limited log of denied packets.
    public var logDenied: Bool = false
    /// Delete the conntrack entries of established flows that a new policy denies (on by default).
    public var revokeEstablished: Bool = true
    /// Inbound ports to this host (input hook) that are accepted whatever the zones: `tcp/22`.
    public var failsafe: [PortSpec] = []
    public var location: SourceLocation?
    /// Every zone in audit mode.
    public var audit: Bool = false
    /// The NFLOG group that denied and audited packets are sent to.
    public var logGroup: UInt16 = Settings.defaultLogGroup
    /// Logged packets per second, per verdict, enforced by the kernel.
    public var logRate: UInt32 = Settings.defaultLogRate
    /// NFLOG (default) or the kernel log.
    public var logTo: LogTarget = .nflog
    /// The conntrack mark bits zonewall may use to carry a local sender's zone to the input hook.
    public var ctMarkBits: UInt32 = Settings.defaultCtMarkBits
    /// Where `ct_mark_bits` is written, if it is.
    public var ctMarkBitsLocation: SourceLocation?

    /// 0x000000ff: clear of kube-proxy (0x4000, 0x8000), Calico (0xffff0000) and Cilium (0x0f00).
    public static let defaultCtMarkBits: UInt32 = 0x0000_00ff

    /// The default NFLOG group.
    public static let defaultLogGroup: UInt16 = 100
    /// The default kernel rate limit of logged packets per second, per verdict.
    public static let defaultLogRate: UInt32 = 100

    public init(denied: DeniedAction = .drop, logDenied: Bool = false, revokeEstablished: Bool = true,
                failsafe: [PortSpec] = [], location: SourceLocation? = nil,
                audit: Bool = false, logGroup: UInt16 = Settings.defaultLogGroup,
                logRate: UInt32 = Settings.defaultLogRate, logTo: LogTarget = .nflog) {
        self.denied = denied
        self.logDenied = logDenied
        self.revokeEstablished = revokeEstablished
        self.failsafe = failsafe
        self.location = location
        self.audit = audit
        self.logGroup = logGroup
        self.logRate = logRate
        self.logTo = logTo
    }

    /// How many local zones fit in the mark field (value 0 means "no zone").
    public var ctMarkCapacity: Int { ctMarkBits.nonzeroBitCount >= 31 ? Int(Int32.max) : (1 << ctMarkBits.nonzeroBitCount) - 1 }
}

/// One side of an expectation or an `explain` query: a named zone/world/host, or an address to classify.
public enum Party: Hashable, Sendable, CustomStringConvertible {
    case endpoint(Endpoint)
    case address(IPPrefix)
    /// `unit:NAME`: a process of that systemd unit on this host.
    case unit(String)
    /// `cgroup:/PATH`: a process in that cgroup on this host.
    case cgroup(String)
    /// `user:NAME|UID`: a process of that local user (only ever a sender).
    case user(String)
    /// `iface:NAME`: a packet arriving on (source) or leaving by (destination) that interface.
    case interface(String)

    public var description: String {
        switch self {
        case .endpoint(let e): e.description
        case .address(let a): a.description
        case .unit(let u): "unit:\(u)"
        case .cgroup(let c): "cgroup:\(c)"
        case .user(let u): "user:\(u)"
        case .interface(let i): "iface:\(i)"
        }
    }

    /// Whether the party is a local process (unit, cgroup or user).
    public var isLocalProcess: Bool {
        switch self {
        case .unit, .cgroup, .user: true
        default: false
        }
    }

    /// Parses `unit:…`, `cgroup:…`, `user:…` and `iface:…`; nil for anything else (a zone name or address).
    public static func identity(_ text: String) -> Party? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let value = String(text[text.index(after: colon)...])
        guard !value.isEmpty else { return nil }
        switch text[..<colon] {
        case "unit": return .unit(value)
        case "cgroup": return .cgroup(value)
        case "user": return .user(value)
        case "iface": return .interface(value)
        default: return nil
        }
    }
}

/// The verdict for a flow.
public enum FlowVerdict: String, Hashable, Sendable {
    case allow, deny
}

/// An `expect:` entry: a claim about a flow that `zonewall test` checks.
public struct Expectation: Hashable, Sendable {
    public var from: Party
    public var to: Party
    public var port: PortSpec
    public var verdict: FlowVerdict
    public var location: SourceLocation
}

/// A validated policy: every file of a policy directory, merged.
public struct Policy: Hashable, Sendable {
    /// Zones sorted by name.
    public var zones: [Zone]
    /// Allow rules in file-name order, then in file order.
    public var rules: [AllowRule]
    public var settings: Settings
    public var expectations: [Expectation]
    /// The uid each user name of the zones resolved to when the policy was loaded with a
    /// `UserLookup` (decimal uids are not listed); empty without one.
    public var userIDs: [String: UInt32] = [:]

    public init(zones: [Zone], rules: [AllowRule], settings: Settings = Settings(), expectations: [Expectation] = []) {
        self.zones = zones.sorted { $0.name < $1.name }
        self.rules = rules
        self.settings = settings
        self.expectations = expectations
    }

    public func zone(named name: String) -> Zone? { zones.first { $0.name == name } }

    /// Whether the zone is in audit mode, on its own or through `settings: audit: true`.
    public func isAudited(_ zone: String) -> Bool {
        settings.audit || zones.first { $0.name == zone }?.audit == true
    }
}
