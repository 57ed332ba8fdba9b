import Foundation
import ZonePolicy

/// The least allow rules that admit what the flow log saw: `zonewall suggest`.
///
/// Pure. A rule is never wider than the observations: ports are merged only where they are
/// contiguous, `icmp` only for echo requests, and protocols a port spec cannot name exactly
/// (other ICMP types, GRE, …) are reported as not suggested rather than widened to `any`.
public struct Suggester {
    /// The policy in force, to classify and to leave out what it allows.
    public let evaluator: Evaluator
    /// Also suggest rules with `world` at an end.
    public var includeWorld: Bool

    /// One suggested rule.
    public struct Suggestion: Hashable, Sendable {
        public var from: [String]
        public var to: String
        public var ports: [PortSpec]
        public var packets: Int
        /// Packets per port spec, in `ports` order.
        public var packetsPerSpec: [Int]
    }

    /// What the suggestion leaves out, and why.
    public struct Skipped: Hashable, Sendable {
        public var from: String
        public var to: String
        public var what: String
        public var packets: Int
        public var reason: String
    }

    /// Zones of local processes that can send (units, cgroups, users) and receive (units,
    /// cgroups), and interface zones: a logged packet shows addresses only, so an end that looks
    /// like `host` or `world` may be one of them.
    let localSenders: [String], localReceivers: [String], interfaceZones: [String]
    /// `settings.failsafe`: inbound ports to this host open whatever the zones.
    let failsafe: [PortSpec]

    /// A suggester for the policy in force.
    public init(policy: Policy, includeWorld: Bool = false) {
        self.evaluator = Evaluator(policy)
        self.includeWorld = includeWorld
        localSenders = policy.zones.filter(\.isLocal).map(\.name)
        localReceivers = policy.zones.filter(\.hasCgroups).map(\.name)
        interfaceZones = policy.zones.filter { !$0.interfaces.isEmpty }.map(\.name)
        failsafe = policy.settings.failsafe
    }

    /// Why no rule can be suggested for a packet whose end an identity zone may hold whatever its
    /// address says (a local socket's cgroup or user, an interface), or nil. A rule for the
    /// address's zone or `host` would open the port to every other process of this host, and
    /// still leave the unit's flow denied.
    public func ambiguity(from: Endpoint, to: Endpoint, hook: LogHook) -> String? {
        func named(_ zones: [String]) -> String {
            zones.prefix(5).joined(separator: ", ") + (zones.count > 5 ? " and \(zones.count - 5) more" : "")
        }
        // The kernel classifies a local socket by its cgroup or user before its address, so on
        // these hooks the local end may be such a zone whatever its address says.
        if hook == .output, !localSenders.isEmpty {
            return "the sender may be a process of zone(s) \(named(localSenders)) (units, cgroups, users): "
                + "a logged packet does not say which process sent it, and a rule from \(from) would admit every other one"
        }
        if hook == .input, !localReceivers.isEmpty {
            return "the receiver may be a process of zone(s) \(named(localReceivers)) (units, cgroups): "
                + "a logged packet does not say which process it was for, and a rule to \(to) would admit every other one"
        }
        if !interfaceZones.isEmpty, (hook != .output && from == .world) || (hook != .input && to == .world) {
            return "the \(hook != .output && from == .world ? "sender" : "receiver") may be in interface zone(s) \(named(interfaceZones)): "
                + "a logged packet's interface is not classified"
        }
        return nil
    }

    struct Pair: Hashable, Comparable {
        var from: String
        var to: String
        static func < (a: Pair, b: Pair) -> Bool { (a.from, a.to) < (b.from, b.to) }
    }

    /// The suggestions for these records, classified afresh with the policy (the log's own
    /// `from`/`to` may come from an older policy), and what was left out.
    public func suggest(_ records: [FlowRecord]) -> (rules: [Suggestion], skipped: [Skipped]) {
        // pair → proto → port → packets; echo requests under the key (icmp, nil).
        var seen: [Pair: [UInt8: [UInt16?: Int]]] = [:]
        var skipped: [String: Skipped] = [:]
        func skip(_ pair: Pair, _ what: String, _ n: Int, _ reason: String) {
            let key = "\(pair.from)|\(pair.to)|\(what)|\(reason)"
            skipped[key, default: Skipped(from: pair.from, to: pair.to, what: what, packets: 0, reason: reason)].packets += n
        }
        for r in records {
            let p = r.packet
            let from = evaluator.classify(p.src, isSource: true, hook: p.hook.context)
            let to = evaluator.classify(p.dst, isSource: false, hook: p.hook.context)
            let pair = Pair(from: from.description, to: to.description)
            let flow = p.flow
            guard evaluator.enforcedDecision(from: from, to: to, flow: flow).verdict == .deny else { continue }
            // Failsafe ports are open to this host whatever the zones: already allowed (the
            // packet was logged under an older policy).
            if p.hook == .input, failsafe.contains(where: { $0.admits(flow) }) { continue }
            if let reason = ambiguity(from: from, to: to, hook: p.hook) {
                skip(pair, ProtocolName.name(p.proto), r.count, reason)
                continue
            }
            if (from == .world || to == .world) && !includeWorld {
                skip(pair, ProtocolName.name(p.proto), r.count, "a world rule (use --include-world)")
                continue
            }
            switch p.proto {
            case 6, 17, 132:
                guard let port = p.port, port > 0 else {
                    skip(pair, ProtocolName.name(p.proto), r.count, "no destination port was logged")
                    continue
                }
                seen[pair, default: [:]][p.proto, default: [:]][port, default: 0] += r.count
            case 1, 58:
                guard flow.isEchoRequest else {
                    skip(pair, "\(ProtocolName.name(p.proto)) type \(p.port.map(String.init) ?? "?")", r.count,
                         "only echo requests can be allowed by a port spec")
                    continue
                }
                seen[pair, default: [:]][1, default: [:]][nil, default: 0] += r.count
            default:
                skip(pair, ProtocolName.name(p.proto), r.count, "only 'any' would admit it, which is wider than what was seen")
            }
        }

        // Per pair: the port specs and their packet counts.
        var perPair: [(pair: Pair, specs: [PortSpec], counts: [Int])] = []
        for (pair, protos) in seen.sorted(by: { $0.key < $1.key }) {
            var specs: [PortSpec] = [], counts: [Int] = []
            for (proto, ports) in protos.sorted(by: { $0.key < $1.key }) {
                if proto == 1 {
                    specs.append(.icmpEcho)
                    counts.append(ports.values.reduce(0, +))
                    continue
                }
                guard let tp = TransportProtocol.allCases.first(where: { $0.number == proto }) else { continue }
                for run in Self.runs(ports.keys.compactMap { $0 }) {
                    specs.append(.ports(tp, run))
                    counts.append(run.reduce(0) { $0 + (ports[$1] ?? 0) })
                }
            }
            perPair.append((pair, specs, counts))
        }
        // Sources with the same destination and the same specs share one rule.
        var rules: [Suggestion] = []
        for item in perPair {
            if let i = rules.firstIndex(where: { $0.to == item.pair.to && $0.ports == item.specs }) {
                rules[i].from.append(item.pair.from)
                rules[i].packets += item.counts.reduce(0, +)
                rules[i].packetsPerSpec = zip(rules[i].packetsPerSpec, item.counts).map(+)
            } else {
                rules.append(Suggestion(from: [item.pair.from], to: item.pair.to, ports: item.specs,
                                        packets: item.counts.reduce(0, +), packetsPerSpec: item.counts))
            }
        }
        let skippedList = skipped.values.sorted { ($0.from, $0.to, $0.what) < ($1.from, $1.to, $1.what) }
        return (rules, skippedList)
    }

    /// Words YAML 1.1 reads as booleans or null when written plain; a zone may be named one.
    static let plainNonStrings: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]

    /// A zone name (or `world`, `host`) as a YAML scalar that reads back as that string, in block
    /// and in flow context: plain when it is a lowercase identifier no resolver reads as anything
    /// else, double-quoted (with escapes) otherwise: `"no"`, `"null"`, `"1"`, `"~"`, `"a: b"`, `"#x"`.
    public static func scalar(_ name: String) -> String {
        let plain = name.utf8.first.map { (97...122).contains($0) } == true
            && name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 || $0 == 45 }
            && !plainNonStrings.contains(name.lowercased())
        if plain { return name }
        var out = "\""
        for u in name.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || (0x7f...0x9f).contains(u.value) || [0x2028, 0x2029, 0xfeff].contains(u.value) {
                    out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// Sorted ports joined into contiguous runs.
    static func runs(_ ports: [UInt16]) -> [ClosedRange<UInt16>] {
        var out: [ClosedRange<UInt16>] = []
        for p in Set(ports).sorted() {
            if let last = out.last, last.upperBound < .max, last.upperBound + 1 == p {
                out[out.count - 1] = last.lowerBound...p
            } else {
                out.append(p...p)
            }
        }
        return out
    }

    /// The suggestions as a policy file: `allow:` rules ready to drop into the policy directory,
    /// with what was left out as comments.
    public static func yaml(_ rules: [Suggestion], skipped: [Skipped], source: String) -> String {
        var out = "# Suggested by `zonewall suggest` from \(source): the least rules that admit what was seen.\n"
        for s in skipped {
            // A comment ends at a line break: a name holding one must not start a line of YAML.
            let line = "not suggested: \(s.from) → \(s.to) \(s.what), \(s.packets) packet(s): \(s.reason)"
            out += "# " + line.map { $0.isNewline ? " " : String($0) }.joined() + "\n"
        }
        if rules.isEmpty { return out + "allow: []\n" }
        out += "allow:\n"
        for r in rules {
            let from = r.from.count == 1 ? scalar(r.from[0]) : "[" + r.from.map(scalar).joined(separator: ", ") + "]"
            let detail = zip(r.ports, r.packetsPerSpec).map { "\($0): \($1)" }.joined(separator: ", ")
            out += "  - from: \(from)\n"
            out += "    to: \(scalar(r.to))\n"
            out += "    ports: [" + r.ports.map(\.description).joined(separator: ", ") + "]\n"
            out += "    description: \"suggested from \(r.packets) observed packet\(r.packets == 1 ? "" : "s") (\(detail))\"\n"
        }
        return out
    }
}
