/// A packet as the interpreter sees it: just the fields zonewall's rules read.
public struct Packet: Hashable, Sendable {
    /// `.ipv4` or `.ipv6`.
    public var family: Family
    public var source: Value
    public var destination: Value
    /// IP protocol number (`meta l4proto`).
    public var l4proto: UInt8
    /// The two bytes at transport offset 2 (`th dport`): the destination port for TCP, UDP
    /// and SCTP; for ICMP it is the checksum.
    public var transportOffset2: UInt16
    /// The first transport byte: the ICMP type.
    public var icmpType: UInt8
    /// The two bytes at transport offset 0 (`th sport`) for protocols other than ICMP: the
    /// source port. For ICMP and ICMPv6 `th sport` is `icmpType . icmpCode` instead.
    public var sourcePort: UInt16
    /// The second transport byte of an ICMP packet: the code.
    public var icmpCode: UInt8
    /// Conntrack state bits (`ct state`): new 8, established 2, related 4, invalid 1.
    public var ctState: UInt32
    /// The ids of the local socket's cgroup and its ancestors, by level (index 0 is level 1); empty without a socket.
    public var socketCgroups: [UInt64] = []
    /// The local socket's owner (`meta skuid`), on output.
    public var skuid: UInt32?
    /// The arrival interface (`iifname`), where there is one.
    public var iifname: String?
    /// The departure interface (`oifname`), where there is one.
    public var oifname: String?
    /// The conntrack mark; rules may write it (`ct mark set`).
    public var ctMark: UInt32 = 0

    public init(family: Family, source: Value, destination: Value, l4proto: UInt8,
                transportOffset2: UInt16 = 0, icmpType: UInt8 = 0, ctState: UInt32 = 8,
                sourcePort: UInt16 = 0, icmpCode: UInt8 = 0) {
        self.family = family
        self.source = source
        self.destination = destination
        self.l4proto = l4proto
        self.transportOffset2 = transportOffset2
        self.icmpType = icmpType
        self.ctState = ctState
        self.sourcePort = sourcePort
        self.icmpCode = icmpCode
    }

    /// The two bytes `th sport` reads.
    public var transportOffset0: UInt16 {
        l4proto == 1 || l4proto == 58 ? UInt16(icmpType) << 8 | UInt16(icmpCode) : sourcePort
    }
}

/// The final fate of a packet at one hook.
public enum Disposition: Hashable, Sendable {
    case accept
    case drop
    case reject(RejectKind)
}

/// Runs packets through a table's chains, sets and maps, as the kernel would.
///
/// Tests use it to check that the compiled rule set means what the policy evaluator says.
public struct Interpreter: Sendable {
    public let table: Table
    private let chains: [String: Chain]
    private let sets: [String: NamedSet]

    public init(_ table: Table) {
        self.table = table
        self.chains = Dictionary(table.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.sets = Dictionary(table.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The packet's fate at `hook`: every base chain on the hook, in priority order.
    public func evaluate(_ p: Packet, hook: Hook) -> Disposition {
        var p = p
        return evaluate(&p, hook: hook)
    }

    /// `evaluate(_:hook:)`, keeping what the rules wrote into the packet's conntrack entry (`ct mark`).
    public func evaluate(_ p: inout Packet, hook: Hook) -> Disposition {
        let bases = table.chains.filter { $0.base?.hook == hook }.sorted { $0.base!.priority < $1.base!.priority }
        for chain in bases {
            switch run(chain, &p, depth: 0) {
            case .terminal(let d): if d != .accept { return d }
            case .endOfChain:
                if chain.base?.policy == .drop { return .drop }
            }
        }
        return .accept
    }

    private enum Outcome { case terminal(Disposition), endOfChain }

    private func run(_ chain: Chain, _ p: inout Packet, depth: Int) -> Outcome {
        precondition(depth < 16, "jump depth exceeded in \(chain.name)")
        for rule in chain.rules {
            ruleLoop: for e in rule.expressions {
                switch e {
                case .match(let sel, let cmp):
                    guard let v = value(sel, p) else { break ruleLoop }
                    let ok: Bool = switch cmp {
                    case .equal(let x): v == x
                    case .notEqual(let x): v != x
                    case .inRange(let lo, let hi): lo <= v && v <= hi
                    case .anyBit(let mask): (v.low & mask.low) != 0
                    case .masked(let mask, let x): (v.low & mask.low) == x.low
                    }
                    if !ok { break ruleLoop }
                case .lookup(let sels, let name, let negated):
                    guard let key = key(sels, p) else { break ruleLoop }
                    if (find(key, in: name) != nil) == negated { break ruleLoop }
                case .verdictMap(let sels, let name):
                    guard let key = key(sels, p), case .verdict(let v)? = find(key, in: name)?.data else { break ruleLoop }
                    switch apply(v, &p, depth: depth) {
                    case .some(let o): return o
                    case .none: break ruleLoop  // returned from a jump: next rule
                    }
                case .counter, .limit, .log, .nflog:
                    continue
                case .reject(let kind):
                    return .terminal(.reject(kind))
                case .setCtMarkField(let mask, let value):
                    p.ctMark = (p.ctMark & ~mask) | value
                case .verdict(let v):
                    switch apply(v, &p, depth: depth) {
                    case .some(let o): return o
                    case .none: break ruleLoop
                    }
                }
            }
        }
        return .endOfChain
    }

    /// nil means "carry on with the next rule of the calling chain".
    private func apply(_ v: Verdict, _ p: inout Packet, depth: Int) -> Outcome? {
        switch v {
        case .accept: return .terminal(.accept)
        case .drop: return .terminal(.drop)
        case .continue: return nil
        case .return: return .endOfChain
        case .jump(let c):
            guard let chain = chains[c] else { preconditionFailure("jump to missing chain \(c)") }
            if case .terminal(let d) = run(chain, &p, depth: depth + 1) { return .terminal(d) }
            return nil
        case .goto(let c):
            guard let chain = chains[c] else { preconditionFailure("goto missing chain \(c)") }
            return run(chain, &p, depth: depth + 1)
        }
    }

    private func key(_ sels: [Selector], _ p: Packet) -> [Value]? {
        var out: [Value] = []
        for s in sels {
            guard let v = value(s, p) else { return nil }
            out.append(v)
        }
        return out
    }

    private func find(_ key: [Value], in name: String) -> SetElement? {
        guard let set = sets[name] else { preconditionFailure("lookup in missing set \(name)") }
        return set.elements.first { e in zip(e.key, key).allSatisfy { $0.contains($1) } }
    }

    private func value(_ s: Selector, _ p: Packet) -> Value? {
        let v4 = p.family == .ipv4
        switch s {
        case .ipSaddr: return v4 ? p.source : nil
        case .ipDaddr: return v4 ? p.destination : nil
        case .ip6Saddr: return v4 ? nil : p.source
        case .ip6Daddr: return v4 ? nil : p.destination
        case .l4proto: return Value(UInt64(p.l4proto), width: 1)
        case .nfproto: return Value(UInt64(p.family.rawValue), width: 1)
        case .thDport: return Value(UInt64(p.transportOffset2), width: 2)
        case .thSport: return Value(UInt64(p.transportOffset0), width: 2)
        case .icmpType: return v4 && p.l4proto == 1 ? Value(UInt64(p.icmpType), width: 1) : nil
        case .icmpv6Type: return !v4 && p.l4proto == 58 ? Value(UInt64(p.icmpType), width: 1) : nil
        case .ctState: return Value(UInt64(p.ctState), width: 4)
        case .metaSkuid: return p.skuid.map { Value(UInt64($0), width: 4) }
        case .iifname: return p.iifname.map(InterfaceName.value)
        case .oifname: return p.oifname.map(InterfaceName.value)
        case .ctMark: return Value(UInt64(p.ctMark), width: 4)
        case .cgroupLevel1, .cgroupLevel2, .cgroupLevel3, .cgroupLevel4,
             .cgroupLevel5, .cgroupLevel6, .cgroupLevel7, .cgroupLevel8,
             .cgroupLevel9, .cgroupLevel10, .cgroupLevel11, .cgroupLevel12,
             .cgroupLevel13, .cgroupLevel14, .cgroupLevel15, .cgroupLevel16:
            // No socket, or a socket above that level: neither == nor != matches, as in the kernel.
            let level = s.cgroupLevel!
            return level <= p.socketCgroups.count ? Value(p.socketCgroups[level - 1], width: 8) : nil
        }
    }
}
