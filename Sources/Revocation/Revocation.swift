import HostIdentity
import Ruleset
import ZonePolicy

/// A flow whose conntrack entry a new policy no longer allows.
public struct RevokedFlow: Hashable, Sendable {
    public var entry: ConntrackEntry
    /// The zones (or world/host) the flow's ends classify into under the new policy; `-` when
    /// revoking against a rule set rather than a policy.
    public var from: String
    public var to: String
    /// Whether the previous policy allowed it; nil when the previous policy is not known
    /// (`zonewall apply`, a daemon start).
    public var previouslyAllowed: Bool?
    /// Why the new policy denies it.
    public var reason: String
}

/// What one revocation pass did.
public struct RevocationReport: Sendable {
    /// Entries looked at.
    public var scanned = 0
    /// The flows found denied, each with its zones.
    public var revoked: [RevokedFlow] = []
    /// Entries the kernel deleted (fewer than `revoked` when some ended meanwhile).
    public var deleted = 0
    /// Sockets read to find local ends' owners; nil when the table was not read.
    public var sockets: Int?
    /// Why the socket table could not be read; local ends were then judged without owners.
    public var socketsError: String?

    public init() {}
}

/// Revocation: after a commit that removes permission, the conntrack entries of established
/// flows the new policy denies are deleted, so that their next packet is a new flow again and
/// meets the zone chains (denied; with `denied: reject`, a reset).
///
/// The decision is pure (`decide`, `plan`): each entry's tuple, as the filter hooks saw it, is
/// evaluated with the new policy exactly as `zonewall explain` would. Entries of flows zonewall
/// does not govern (neither end in a zone) and entries the new policy still allows are left alone.
///
/// Audit zones: a flow the policy denies but audits passes the firewall, so it is kept; the
/// commit that switches its zone to enforce is a tightening like any other and revokes it.
///
/// Local identities (units, cgroups, users): an entry carries no socket owner, so the local end
/// of a flow sent or received here is looked up in the socket table (`SocketTable`, sock_diag)
/// by its tuple, and judged by the socket's cgroup and uid (`SocketZones`). An end whose socket
/// is gone, or whose owner is unknown, is revoked only when every zone it could belong to is denied.
public enum Revocation {
    /// The hooks a flow crossed on this machine, from its addresses: to one of ours is delivered
    /// (input), from one of ours is sent (output), anything else is routed (forward).
    public static func hooks(of e: ConntrackEntry, local: Set<LocalAddress>) -> [HookContext] {
        var hooks: [HookContext] = []
        if local.contains(LocalAddress(family: e.family, address: e.source)) { hooks.append(.output) }
        if local.contains(LocalAddress(family: e.family, address: e.translatedDestination)) { hooks.append(.input) }
        return hooks.isEmpty ? [.forward] : hooks
    }

    /// The new policy's decision for an entry: denied if any hook it crossed denies it.
    ///
    /// Without the socket table, where the policy has zones of units, cgroups or users, the
    /// local end of a flow sent from (output) or delivered to (input) this host may belong to
    /// any of them rather than to its address's zone. Such a flow counts as denied only if the
    /// policy denies it whichever of them owns the socket: a flow an identity zone may still
    /// make is never cut. `revoke(in:sockets:new:old:)` reads the socket table and judges by
    /// the owner (`SocketZones`).
    public static func decide(_ e: ConntrackEntry, with evaluator: Evaluator, local: Set<LocalAddress>) -> Decision {
        decide(e, with: evaluator, local: local, sockets: SocketZones(evaluator))
    }

    /// Which zone a flow's local socket belongs to, as the kernel classifies it: the zone of
    /// its cgroup (the deepest ancestor-or-self a unit or cgroup names), else, for a sender,
    /// the zone of its owner's uid, else its address's zone.
    ///
    /// With the pass's socket table (`index`), the socket of each local end is looked up by
    /// the flow's tuple. Without it, or when the socket is gone or its cgroup unknown, the end
    /// may belong to any identity zone, and `decide` keeps the flow unless all of them are denied.
    public struct SocketZones: Sendable {
        /// Every zone a sending socket can belong to through its cgroup or its user.
        var senders: [Endpoint]
        /// Every zone a receiving socket can belong to through its cgroup.
        var receivers: [Endpoint]
        let identities: IdentityClassifier
        /// uid → zone, for the policy's users (names resolved once per pass).
        let userZones: [UInt32: String]
        /// The namespace's sockets, read once for the pass.
        public var index: SocketIndex?

        /// Interface zones: an entry records no interface, so a remote end whose address is in no
        /// zone may have come (or gone) through one of them as well as be `world`.
        let interfaces: [Endpoint]

        /// Whether the policy has zones of units, cgroups or users: only then do owners matter.
        public var hasIdentities: Bool { !senders.isEmpty }

        /// The zones of `evaluator`'s policy, classified with its own identity classifier.
        public init(_ evaluator: Evaluator, sockets index: SocketIndex? = nil, uid: (String) -> UInt32? = UserResolver.uid) {
            let zones = evaluator.policy.zones.filter { !$0.units.isEmpty || !$0.cgroups.isEmpty || !$0.users.isEmpty }
            senders = zones.map { .zone($0.name) }
            receivers = zones.filter { !$0.units.isEmpty || !$0.cgroups.isEmpty }.map { .zone($0.name) }
            identities = evaluator.identities
            interfaces = evaluator.policy.zones.filter { !$0.interfaces.isEmpty }.map { .zone($0.name) }
            var users: [UInt32: String] = [:]
            for z in zones { for u in z.users { if let id = uid(u.value) { users[id] = z.name } } }
            userZones = users
            self.index = index
        }

        /// The socket of the entry's sending end, when its owner is known: found, with a cgroup
        /// the hierarchy still shows (a cgroup the daemon cannot see may still match in the kernel).
        func knownSender(_ e: ConntrackEntry) -> LocalSocket? {
            guard let s = index?.sender(of: e), s.cgroupID != nil, s.cgroupPath != nil else { return nil }
            return s
        }

        /// The socket of the entry's receiving end, when its owner is known.
        func knownReceiver(_ e: ConntrackEntry) -> LocalSocket? {
            guard let s = index?.receiver(of: e), s.cgroupID != nil, s.cgroupPath != nil else { return nil }
            return s
        }

        /// The endpoints the entry's sending end may be on the output hook, given its address's endpoint.
        func sending(_ e: ConntrackEntry, address: Endpoint) -> [Endpoint] {
            guard hasIdentities else { return [address] }
            if let s = knownSender(e) { return [zone(of: s, sending: true) ?? address] }
            return [address] + senders
        }

        /// The endpoints the entry's receiving end may be on the input hook, given its address's endpoint.
        func receiving(_ e: ConntrackEntry, address: Endpoint) -> [Endpoint] {
            guard !receivers.isEmpty else { return [address] }
            if let s = knownReceiver(e) { return [zone(of: s, sending: false) ?? address] }
            return [address] + receivers
        }

        func zone(of s: LocalSocket, sending: Bool) -> Endpoint? {
            if let path = s.cgroupPath, let z = identities.zone(ofCgroup: path) { return .zone(z) }
            if sending, let z = userZones[s.uid] { return .zone(z) }
            return nil
        }
    }

    static func decide(_ e: ConntrackEntry, with evaluator: Evaluator, local: Set<LocalAddress>, sockets: SocketZones) -> Decision {
        var last: Decision?
        let hooks = hooks(of: e, local: local)
        // Both ends on this host: the flow crossed output, then input, over loopback.
        let loopback = hooks.count == 2 && sockets.hasIdentities
        for hook in hooks {
            let src = evaluator.classify(IPPrefix(family: e.family, address: e.source, length: e.family.bits), isSource: true, hook: hook)
            let dst = evaluator.classify(IPPrefix(family: e.family, address: e.translatedDestination, length: e.family.bits),
                                         isSource: false, hook: hook)
            var sources = hook == .output ? sockets.sending(e, address: src) : [src]
            var destinations = hook == .input ? sockets.receiving(e, address: dst) : [dst]
            // An unzoned remote end may be an interface zone's: the flow is cut only when that
            // is denied as well as world.
            if src == .world { sources += sockets.interfaces }
            if dst == .world { destinations += sockets.interfaces }
            if loopback {
                // Over loopback the rule set lets a sender of a local zone pass its output hook
                // (it marks the flow with the zone), and the input hook judges it with the
                // receiver. Which of its chains then decides is not modelled here, so the input
                // hook takes every source it could see (the sender's zone or host by the mark,
                // or the address) and, for a receiver in no zone, host or the address: the flow
                // is cut only when all of them are denied.
                if hook == .output, let s = sockets.knownSender(e), sockets.zone(of: s, sending: true) != nil { continue }
                if hook == .input {
                    let sender = sockets.knownSender(e).map { [sockets.zone(of: $0, sending: true) ?? .host] } ?? sockets.senders
                    sources = sender + [src, .host]
                    if let r = sockets.knownReceiver(e), sockets.zone(of: r, sending: false) == nil { destinations = [dst, .host] }
                }
            }
            var denied: Decision?
            var allowed: Decision?
            for s in sources {
                for d in destinations {
                    let decision = evaluator.decide(from: s, to: d, flow: e.flow, hook: hook)
                    // An audited deny passes the firewall: its flow is not cut while the zone is
                    // in audit mode, and is revoked by the commit that enforces the zone.
                    if decision.passes { allowed = allowed ?? decision } else { denied = denied ?? decision }
                }
            }
            if let allowed { last = allowed } else if let denied { return denied }
        }
        return last!  // only a loopback flow's output hook is ever skipped, and its input hook decided
    }

    /// The entries to delete, from the new policy (and the old one, to say what changed).
    public static func plan(_ e: ConntrackEntry, new: Evaluator, old: Evaluator?, local: Set<LocalAddress>) -> RevokedFlow? {
        plan(e, new: (new, SocketZones(new)), old: old.map { ($0, SocketZones($0)) }, local: local)
    }

    static func plan(_ e: ConntrackEntry, new: (Evaluator, SocketZones), old: (Evaluator, SocketZones)?,
                     local: Set<LocalAddress>) -> RevokedFlow? {
        let d = decide(e, with: new.0, local: local, sockets: new.1)
        guard !d.passes else { return nil }
        let before = old.map { decide(e, with: $0.0, local: local, sockets: $0.1).passes }
        return RevokedFlow(entry: e, from: d.from.description, to: d.to.description, previouslyAllowed: before, reason: d.reason)
    }

    /// The disposition the rule set gives the entry's first packet if it were new, at every hook
    /// it crossed: revocation against a table when its policy is not known (a restore). The
    /// interpreter searches sets linearly: meant for the tables one restores by hand, not for
    /// 100,000s of elements.
    ///
    /// An entry records no interface, so the flow may have come in or gone out through any of
    /// `interfaces` (the names the rule set tells apart, `interfaceNames(in:)`) or none of them:
    /// it is cut only when the hook denies it whatever the interfaces.
    public static func plan(_ e: ConntrackEntry, table: Interpreter, local: Set<LocalAddress>,
                            interfaces: [String] = []) -> RevokedFlow? {
        let width = e.family == .ipv4 ? 4 : 16
        let packet = Packet(family: e.family == .ipv4 ? .ipv4 : .ipv6, source: Value(e.source, width: width),
                            destination: Value(e.translatedDestination, width: width), l4proto: e.proto,
                            transportOffset2: e.hasPorts ? e.translatedDestinationPort : 0, icmpType: e.icmpType, ctState: 8)
        let names: [String?] = [nil] + interfaces
        for hook in hooks(of: e, local: local) {
            let h: Hook = switch hook {
            case .input: .input
            case .forward: .forward
            case .output: .output
            }
            var verdict = table.evaluate(packet, hook: h)
            guard verdict != .accept else { continue }
            // Input and forward packets come in through an interface, forward and output ones go out through one.
            search: for iif in h == .output ? [nil] : names {
                for oif in h == .input ? [nil] : names where iif != nil || oif != nil {
                    var p = packet
                    p.iifname = iif
                    p.oifname = oif
                    if table.evaluate(p, hook: h) == .accept { verdict = .accept; break search }
                }
            }
            if verdict != .accept {
                return RevokedFlow(entry: e, from: "-", to: "-", previouslyAllowed: nil,
                                   reason: "the restored rule set \(verdict == .drop ? "drops" : "rejects") it on the \(hook) hook")
            }
        }
        return nil
    }

    /// The interface names `table` tells apart: each name its interface sets and rules hold, a
    /// wildcard (`wgp*`) standing for its prefix. Loopback is left out: a flow that crossed it
    /// has local ends, and says so by its addresses.
    public static func interfaceNames(in table: Table) -> [String] {
        var names = Set<String>()
        for set in table.sets where set.keyType == [.ifname] {
            for i in 0 ..< set.elements.count { names.insert(InterfaceName.text(set.elements[i].key[0].lo)) }
        }
        for chain in table.chains {
            for rule in chain.rules {
                for case .match(let selector, let comparison) in rule.expressions where selector == .iifname || selector == .oifname {
                    switch comparison {
                    case .equal(let v), .notEqual(let v): names.insert(InterfaceName.text(v))
                    default: break
                    }
                }
            }
        }
        names.remove("lo")
        return names.sorted()
    }

    /// Scans `table`, deletes every entry `new` denies, and reports them. Does nothing (and
    /// scans nothing) when `new.settings.revokeEstablished` is false.
    ///
    /// With `sockets`, and where either policy has zones of units, cgroups or users, the socket
    /// table is read once first, and each local end is judged by its socket's owner. When it
    /// cannot be read, the pass goes on without it (`RevocationReport.socketsError`).
    public static func revoke(in table: any ConntrackTable, sockets: (any SocketTable)? = nil,
                              new: Policy, old: Policy?) throws -> RevocationReport {
        guard new.settings.revokeEstablished else { return RevocationReport() }
        // The evaluators (and the socket table) are built at the first entry judged: after most
        // commits of a busy daemon the table is empty or small, and building them is the cost.
        var socketsError: String?
        var socketCount: Int?
        var judges: (new: (Evaluator, SocketZones), old: (Evaluator, SocketZones)?)?
        func prepare() -> (new: (Evaluator, SocketZones), old: (Evaluator, SocketZones)?) {
            if let judges { return judges }
            let newEvaluator = Evaluator(new)
            let oldEvaluator = old.map { Evaluator($0) }
            var newZones = SocketZones(newEvaluator)
            var oldZones = oldEvaluator.map { SocketZones($0) }
            if let sockets, newZones.hasIdentities || oldZones?.hasIdentities == true {
                do {
                    let list = try sockets.sockets()
                    let index = SocketIndex(list)
                    socketCount = list.count
                    newZones.index = index
                    oldZones?.index = index
                } catch {
                    socketsError = "\(error)"
                }
            }
            let made = (new: (newEvaluator, newZones), old: oldEvaluator.map { ($0, oldZones!) })
            judges = made
            return made
        }
        var report = try revoke(in: table) { entry, local in
            let (newEval, oldEval) = prepare()
            return plan(entry, new: newEval, old: oldEval, local: local)
        }
        report.sockets = socketCount
        report.socketsError = socketsError
        return report
    }

    /// Scans `table` and deletes every entry `restored` would not admit as a new flow.
    public static func revoke(in table: any ConntrackTable, restoring restored: Table) throws -> RevocationReport {
        let interpreter = Interpreter(restored)
        let interfaces = interfaceNames(in: restored)
        return try revoke(in: table) { plan($0, table: interpreter, local: $1, interfaces: interfaces) }
    }

    /// Scans `table`, asks `judge` about each entry, deletes the ones it returns.
    public static func revoke(in table: any ConntrackTable,
                              judge: (ConntrackEntry, Set<LocalAddress>) -> RevokedFlow?) throws -> RevocationReport {
        var report = RevocationReport()
        let local = try table.localAddresses()
        var scanned = 0
        var revoked: [RevokedFlow] = []
        try table.scan { e in
            scanned += 1
            if let r = judge(e, local) { revoked.append(r) }
        }
        report.scanned = scanned
        report.revoked = revoked
        if !revoked.isEmpty { report.deleted = try table.delete(revoked.map(\.entry)) }
        return report
    }
}
