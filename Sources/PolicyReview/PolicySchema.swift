import ZonePolicy

/// The JSON Schema (draft 2020-12) of one policy file, for editors and CI.
///
/// It is structural: keys, types and the shapes of port specs, addresses and names. `zonewall
/// check` stays the authority on meaning (unknown zones, overlaps, host bits).
///
/// Built from one table of keys per mapping: adding a policy key is adding a `Key` line.
public enum PolicySchema {
    /// One key of a mapping: its name, what it means, and the schema of its value.
    public struct Key: Sendable {
        public var name: String
        public var description: String
        public var schema: JSONValue
        public var required: Bool

        /// A key named `name`, meaning `description`, whose value matches `schema`.
        public init(_ name: String, _ description: String, _ schema: JSONValue, required: Bool = false) {
            self.name = name
            self.description = description
            self.schema = schema
            self.required = required
        }
    }

    /// A closed mapping made of `keys`: anything else is rejected.
    public static func object(_ description: String, _ keys: [Key]) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        for k in keys {
            guard case .object(var s) = k.schema else { continue }
            s["description"] = .string(k.description)
            properties[k.name] = .object(s)
        }
        var o: [String: JSONValue] = [
            "type": "object",
            "description": .string(description),
            "additionalProperties": false,
            "properties": .object(properties),
        ]
        let required = keys.filter(\.required).map { JSONValue.string($0.name) }
        if !required.isEmpty { o["required"] = .array(required) }
        return .object(o)
    }

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/$defs/\(name)")] }

    /// `[tT][cC][pP]`: the loader lowercases port specs, and ECMA-262 patterns have no inline `(?i)`.
    static func anyCase(_ word: String) -> String {
        word.map { c in c.isLetter ? "[\(c.lowercased())\(c.uppercased())]" : String(c) }.joined()
    }

    static let zoneName = "^[a-z][a-z0-9_-]{0,31}$"
    static let port = "[0-9]{1,5}"
    static let portSpecPattern: String = {
        let protos = TransportProtocol.allCases.map { anyCase($0.rawValue) }.joined(separator: "|")
        let words = ["any", "icmp", "ping"].map(anyCase).joined(separator: "|")
        return "^(\(words)|(\(protos))(/\(port)(-\(port))?)?)$"
    }()
    static let ipv4 = #"([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?"#
    static let ipv6 = #"[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,7}(:([0-9]{1,3}\.){3}[0-9]{1,3})?(/[0-9]{1,3})?"#
    static let addressPattern = "^(\(ipv4)|\(ipv6))$"
    /// `unit:NAME`, `cgroup:/PATH`, `user:NAME|UID`, `iface:NAME` in an expectation: one unit (no
    /// glob), an absolute cgroup path, a user or uid, one interface (no wildcard, 15 bytes at most).
    static let identityPatterns = [
        #"^unit:[^\s/*?\[\]]+$"#,
        #"^cgroup:/\S*[^\s/]\S*$"#,
        #"^user:[A-Za-z0-9._$-]{1,32}$"#,
        #"^iface:[^\s/:*]{1,15}$"#,
    ]
    static let singleAddressPattern = #"^(([0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,7}(:([0-9]{1,3}\.){3}[0-9]{1,3})?)$"#

    static let lintKeys: [Key] = [
        Key("ignore", "The lints silenced here: " + LintKind.allCases.map { "\($0.rawValue) (\($0.summary))" }.joined(separator: "; ") + ".",
            ["oneOf": [ref("lintKind"), ["type": "array", "minItems": 1, "items": ref("lintKind")]]], required: true),
        Key("reason", "Why the lints do not apply here, for the next reviewer (not empty or blank).",
            ["type": "string", "pattern": #"\S"#], required: true),
    ]

    /// Keys of a zone. Other work adds `audit` here.
    public static let zoneKeys: [Key] = [
        Key("description", "What the zone holds, for people.", ["type": "string"]),
        Key("members", "Addresses and prefixes in the zone (IPv4 or IPv6); the longest prefix containing an address decides its zone.",
            ["type": ["array", "null"], "items": ref("address")]),
        Key("lint", "Lints silenced on this zone, with the reason.", ref("lint")),
        Key("audit", "Audit mode: what the policy would deny to or from this zone passes and is reported to the flow log as audit.",
            ["type": "boolean"]),
        Key("units", "systemd units on this host, by name or glob (billing.service, \"worker@*.service\"): processes in their cgroups belong to the zone.",
            ["type": ["array", "null"], "items": ["type": "string", "minLength": 1]]),
        Key("cgroups", "cgroup v2 paths from the cgroup2 root (/machine.slice/libpod-3f2a.scope): processes in them and below belong to the zone.",
            ["type": ["array", "null"], "items": ["type": "string", "pattern": "^/"]]),
        Key("users", "Local users, by name or uid: what they send belongs to the zone (a user is only a sender).",
            ["type": ["array", "null"], "items": ["type": ["string", "integer"]]]),
        Key("interfaces", "Network interfaces (a trailing * is a wildcard): packets arriving on or leaving by them, when no address matched a zone.",
            // 1 to 15 characters (IFNAMSIZ less its NUL; `check` counts bytes), then an optional `*`.
            ["type": ["array", "null"], "items": ["type": "string", "pattern": "^[^*/:\\s]{1,15}\\*?$"]]),
    ]

    /// Keys of an allow rule.
    public static let ruleKeys: [Key] = [
        Key("from", "Where the traffic comes from: a zone, world (outside every zone) or host (this machine), or a list of them.",
            ref("endpoints"), required: true),
        Key("to", "Where the traffic goes: a zone, world or host, or a list of them.", ref("endpoints"), required: true),
        Key("ports", "What the rule admits: tcp/443, tcp/8000-8099, udp (a whole protocol), icmp (echo request) or any.",
            ["type": "array", "minItems": 1, "items": ref("portSpec")], required: true),
        Key("description", "Why the rule exists, for people.", ["type": "string"]),
        Key("lint", "Lints silenced on this rule, with the reason.", ref("lint")),
    ]

    /// Keys of `settings`. Other work adds audit, log_group, log_rate, failsafe, … here.
    public static let settingsKeys: [Key] = [
        Key("denied", "What happens to denied packets: drop (silently) or reject (TCP reset, ICMP unreachable).",
            ["type": "string", "enum": ["drop", "reject"]]),
        Key("log_denied", "Log denied packets to the kernel log, rate-limited, with the prefix \"zonewall \".", ["type": "boolean"]),
        Key("revoke_established", "Delete the conntrack entries of established flows a new policy denies (default true); false lets them run on.",
            ["type": "boolean"]),
        Key("failsafe", "Inbound ports to this host that are always accepted, whatever the zones (for example tcp/22); default none.",
            ["type": ["array", "null"], "items": ref("portSpec")]),
        Key("audit", "Audit mode for every zone: denied packets pass and are reported as audit.", ["type": "boolean"]),
        Key("log_group", "The NFLOG group that denied and audited packets are sent to (default 100).",
            ["type": "integer", "minimum": 0, "maximum": 65535]),
        Key("log_rate", "The kernel's rate limit of logged packets per second, per verdict (default 100).",
            ["type": "integer", "minimum": 1, "maximum": 4294967295]),
        Key("log_to", "Where logged packets go: nflog (default; read by zonewall log) or kernel (the kernel log).",
            ["type": "string", "enum": ["nflog", "kernel"]]),
        Key("ct_mark_bits", "The conntrack mark bits zonewall may use to carry a local sender's zone to the input hook (default \"0x000000ff\").",
            ["type": ["string", "integer"]]),
    ]

    /// Keys of an `expect:` entry.
    public static let expectKeys: [Key] = [
        Key("from", "A zone, world, host, a single address to classify, or unit:NAME, cgroup:/PATH, user:NAME|UID, iface:NAME.",
            ref("party"), required: true),
        Key("to", "A zone, world, host, a single address to classify, or unit:NAME, cgroup:/PATH, user:NAME|UID, iface:NAME.",
            ref("party"), required: true),
        Key("port", "One port spec, as in a rule's ports.", ref("portSpec"), required: true),
        Key("verdict", "What zonewall test expects: allow or deny.", ["type": "string", "enum": ["allow", "deny"]], required: true),
    ]

    /// Top-level keys of a policy file.
    public static let topKeys: [Key] = [
        Key("zones", "Isolation zones by name: each a named group of addresses.",
            ["type": ["object", "null"], "propertyNames": ref("zoneName"), "additionalProperties": ref("zone")]),
        Key("allow", "Allow rules: everything between zones, world and host that no rule admits is denied.",
            ["type": ["array", "null"], "items": ref("rule")]),
        Key("settings", "Policy-wide settings; at most one file of a policy directory gives them.",
            ["oneOf": [ref("settings"), ["type": "null"]]]),
        Key("expect", "Claims about flows that zonewall test checks.", ["type": ["array", "null"], "items": ref("expectation")]),
    ]

    /// The schema document.
    public static var document: JSONValue {
        guard case .object(var top) = object("One zonewall policy file. A policy is every *.yaml file of a directory, merged.", topKeys)
        else { return .null }
        top["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        top["$id"] = "https://zonewall.invalid/schema/policy.schema.json"
        top["title"] = "zonewall policy file"
        top["type"] = ["object", "null"]
        top["$defs"] = [
            "zoneName": ["type": "string", "pattern": .string(zoneName), "not": ["enum": ["world", "host"]],
                         "description": "A zone name: [a-z][a-z0-9_-]{0,31}; world and host are reserved."],
            "endpoint": ["type": "string", "pattern": .string(zoneName),
                         "description": "A zone name, world (every address outside all zones) or host (this machine)."],
            "endpoints": ["oneOf": [ref("endpoint"), ["type": "array", "minItems": 1, "items": ref("endpoint")]],
                          "description": "One endpoint or a non-empty list of them."],
            "portSpec": ["type": "string", "pattern": .string(portSpecPattern),
                         "description": "tcp, udp or sctp, optionally /PORT or /LOW-HIGH (1-65535); icmp (echo request); any."],
            "address": ["type": "string", "pattern": .string(addressPattern),
                        "description": "An IPv4 or IPv6 address or prefix without host bits (192.0.2.10, 192.0.2.0/24, 2001:db8::/64)."],
            "party": ["type": "string",
                      "anyOf": .array([["pattern": .string(zoneName)], ["pattern": .string(singleAddressPattern)]]
                          + identityPatterns.map { ["pattern": .string($0)] }),
                      "description": "A zone name, world, host, one address (not a prefix), or a local identity: unit:NAME (a systemd unit), cgroup:/PATH (from the cgroup2 root), user:NAME or user:UID (a sender only), iface:NAME (one interface)."],
            "lintKind": ["type": "string", "enum": .array(LintKind.allCases.map { .string($0.rawValue) }),
                         "description": "A least-privilege lint of zonewall check."],
            "lint": object("Silences lints on one rule or zone; a reason is required.", lintKeys),
            "zone": ["oneOf": [object("A zone.", zoneKeys), ["type": "null", "description": "A zone with no members yet."]],
                     "description": "A zone: its members and description."],
            "rule": object("An allow rule: traffic from any of from to any of to matching any of ports.", ruleKeys),
            "settings": object("Policy-wide settings.", settingsKeys),
            "expectation": object("A claim about one flow.", expectKeys),
        ]
        return .object(top)
    }

    /// The schema as `zonewall schema` prints it and the repository stores it.
    public static var text: String { document.rendered }
}
