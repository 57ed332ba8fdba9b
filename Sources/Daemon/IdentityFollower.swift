import HostIdentity
import Logging
import Reconciler
import ZoneCompiler
import ZonePolicy

/// Keeps the reconciler's host facts current: cgroups from a `CgroupSource` as they come and go
/// (each change is one element transaction), users resolved whenever the policy is (re)loaded.
public actor IdentityFollower {
    private let source: any CgroupSource
    private let reconciler: Reconciler
    private let logger: Logger
    private var task: Task<Void, Never>?
    /// Identity → the zones (and places) naming it.
    private var owners: [CgroupIdentity: [String]] = [:]
    private var snapshot: CgroupSnapshot = [:]
    private var uids: [String: [UInt32]] = [:]

    /// A follower feeding `reconciler` from `source`.
    public init(source: any CgroupSource, reconciler: Reconciler, logger: Logger) {
        self.source = source
        self.reconciler = reconciler
        self.logger = logger
    }

    /// The policy's units, cgroups and users as `source` resolves them now.
    public static func facts(for policy: Policy, source: any CgroupSource) -> HostFacts {
        var owners: [CgroupIdentity: [String]] = [:]
        var facts = HostFacts()
        for z in policy.zones where z.isLocal {
            for u in z.units { owners[.unit(u.value), default: []].append(z.name) }
            for c in z.cgroups { owners[.cgroup(c.value), default: []].append(z.name) }
            for u in z.users { if let uid = UserResolver.uid(u.value) { facts.uids[z.name, default: []].append(uid) } }
        }
        if !owners.isEmpty {
            for (identity, found) in source.snapshot(for: Set(owners.keys)) {
                for zone in owners[identity] ?? [] {
                    facts.cgroups[zone, default: []] += found.map { .init(path: $0.path, id: $0.id, level: $0.level) }
                }
            }
        }
        for key in facts.cgroups.keys { facts.cgroups[key]?.sort() }
        return facts
    }

    /// Follows the identities of the reconciler's current policy (call after start and after each reload).
    public func follow() async {
        let policy = await reconciler.identityPolicy
        var owners: [CgroupIdentity: [String]] = [:]
        var uids: [String: [UInt32]] = [:]
        for z in policy?.zones ?? [] where z.isLocal {
            for u in z.units { owners[.unit(u.value), default: []].append(z.name) }
            for c in z.cgroups { owners[.cgroup(c.value), default: []].append(z.name) }
            for u in z.users {
                if let uid = UserResolver.uid(u.value) {
                    uids[z.name, default: []].append(uid)
                } else {
                    logger.warning("\(u.location): zone '\(z.name)': user '\(u.value)' does not resolve; it matches nothing")
                }
            }
        }
        self.uids = uids
        guard owners != self.owners || task == nil else {
            await push("users re-resolved")
            return
        }
        task?.cancel()
        self.owners = owners
        self.snapshot = [:]
        guard !owners.isEmpty else {
            task = nil
            await push("no units or cgroups")
            return
        }
        let stream = source.events(for: Set(owners.keys))
        task = Task { [weak self] in
            for await event in stream {
                guard let self, !Task.isCancelled else { return }
                await self.handle(event)
            }
        }
    }

    /// Stops following.
    public func stop() {
        task?.cancel()
        task = nil
    }

    private func handle(_ event: CgroupEvent) async {
        let why: String
        switch event {
        case .resynced(let s):
            snapshot = s
            why = "cgroups resolved"
            for (identity, found) in s.sorted(by: { $0.key < $1.key }) where found.isEmpty {
                logger.warning("\(identity) not found; it matches nothing until it appears", metadata: ["zones": "\(owners[identity] ?? [])"])
            }
            for (identity, found) in s.sorted(by: { $0.key < $1.key }) { for c in found { warnIfTooDeep(identity, c) } }
        case .appeared(let identity, let c):
            snapshot[identity, default: []].removeAll { $0.path == c.path }
            snapshot[identity, default: []].append(c)
            why = "\(identity) appeared at \(c.path) (cgroup id \(c.id))"
            warnIfTooDeep(identity, c)
        case .vanished(let identity, let c):
            snapshot[identity, default: []].removeAll { $0.id == c.id }
            why = "\(identity) vanished from \(c.path) (cgroup id \(c.id))"
        }
        logger.info("\(why)")
        await push(why)
    }

    /// A cgroup deeper than the kernel rules read is not matched: say so, its processes are not in the zone.
    private func warnIfTooDeep(_ identity: CgroupIdentity, _ c: ResolvedCgroup) {
        guard c.level > IdentityNames.maxCgroupDepth else { return }
        logger.warning("\(identity) is \(c.path), cgroup level \(c.level), deeper than the \(IdentityNames.maxCgroupDepth) levels zonewall matches: its processes are not in the zone; name an ancestor cgroup instead",
                       metadata: ["zones": "\(owners[identity] ?? [])"])
    }

    private func push(_ why: String) async {
        var facts = HostFacts(uids: uids)
        for (identity, found) in snapshot {
            for zone in owners[identity] ?? [] {
                facts.cgroups[zone, default: []] += found.map { .init(path: $0.path, id: $0.id, level: $0.level) }
            }
        }
        for key in facts.cgroups.keys { facts.cgroups[key]?.sort() }
        await reconciler.hostChanged(facts, why)
    }
}
