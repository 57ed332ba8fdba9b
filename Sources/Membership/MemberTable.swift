import ZonePolicy

/// The members known from a source, kept by applying its events, and merged into a policy.
///
/// Pure: the daemon holds one, applies each event, and hands `merged(into:)` to the reconciler.
public struct MemberTable: Hashable, Sendable {
    /// Valid members by key.
    public private(set) var members: [MemberKey: [IPPrefix]] = [:]
    /// Keys the source itself found unusable (malformed value, bad key), by etcd key.
    public private(set) var rejected: [String: String] = [:]
    /// Whether the source is reachable; false keeps the last members in force (fail-static).
    public private(set) var connected = false
    /// Why the source was last lost, while it is.
    public private(set) var lostReason: String?
    /// The etcd revision seen last: of the last resync, or of the watch since.
    public private(set) var revision: Int64?
    /// Where keys live, for naming them in rejections and source locations.
    public let prefix: String

    public init(prefix: String, members: [Member] = []) {
        self.prefix = prefix
        for m in members { self.members[m.key] = m.addresses }
    }

    /// The members, sorted by key.
    public var sorted: [Member] { members.keys.sorted().map { Member(key: $0, addresses: members[$0]!) } }

    /// Applies one event; true when the members (what the kernel must enforce) changed.
    @discardableResult
    public mutating func apply(_ event: MemberEvent) -> Bool {
        switch event {
        case .added(let m):
            connected = true; lostReason = nil
            rejected[key(m.key)] = nil
            if members[m.key] == m.addresses { return false }
            members[m.key] = m.addresses
            return true
        case .removed(let k):
            rejected[key(k)] = nil  // a deleted key is no longer ignored either
            return members.removeValue(forKey: k) != nil
        case .rejected(let r):
            rejected[r.key] = r.reason
            return false
        case .cleared(let k):
            rejected[k] = nil
            return false
        case .progressed(let rev):
            revision = max(revision ?? 0, rev)
            return false
        case .resynced(let list, let rejections, let rev):
            connected = true; lostReason = nil
            revision = rev
            rejected = Dictionary(rejections.map { ($0.key, $0.reason) }, uniquingKeysWith: { a, _ in a })
            var next: [MemberKey: [IPPrefix]] = [:]
            for m in list { next[m.key] = m.addresses }
            if next == members { return false }
            members = next
            return true
        case .lost(let why):
            connected = false; lostReason = why
            return false
        }
    }

    /// The etcd key of a member.
    public func key(_ k: MemberKey) -> String { "\(prefix)\(k.zone)/\(k.instance)" }

    /// Adds the members to the policy's zones, with the same meaning as file members (longest prefix).
    ///
    /// A member of a zone the policy does not declare is ignored, and so is an address that
    /// another zone already holds exactly (file members first, then members in key order): the
    /// kernel's maps need one zone per prefix. Returns the policy and every ignored key.
    public func merged(into policy: Policy, index given: PolicyIndex? = nil) -> (policy: Policy, rejected: [MemberRejection]) {
        var rejections = rejected.map { MemberRejection(key: $0.key, reason: $0.value) }
        guard !members.isEmpty else { return (policy, rejections.sorted { $0.key < $1.key }) }
        var out = policy
        let files = given ?? PolicyIndex(policy)
        let index = files.zone
        var added: [IPPrefix: Int] = [:]  // addresses taken by members merged so far
        func owner(_ a: IPPrefix) -> Int? { files.owner[a] ?? added[a] }
        for k in members.keys.sorted() {
            let name = key(k)
            guard let zi = index[k.zone] else {
                rejections.append(MemberRejection(key: name, reason: "zone '\(k.zone)' is not declared in the policy"))
                continue
            }
            let location = SourceLocation(path: "etcd:\(name)", line: 0, column: 0)
            var taken: [String] = []
            for a in members[k]! {
                if let o = owner(a) {
                    if o != zi { taken.append("\(a) is already a member of zone '\(out.zones[o].name)'") }
                    continue
                }
                added[a] = zi
                out.zones[zi].members.append(Located(a, at: location))
            }
            if !taken.isEmpty { rejections.append(MemberRejection(key: name, reason: taken.joined(separator: "; ") + " (address ignored)")) }
        }
        return (out, rejections.sorted { $0.key < $1.key })
    }
}

/// A policy's zones by name and its file members' zones by address: what `merged(into:index:)`
/// looks up. A daemon merging members into the same file policy again and again builds it once.
public struct PolicyIndex: Sendable {
    let zone: [String: Int]
    let owner: [IPPrefix: Int]

    public init(_ policy: Policy) {
        var zone: [String: Int] = [:], owner: [IPPrefix: Int] = [:]
        zone.reserveCapacity(policy.zones.count)
        owner.reserveCapacity(policy.zones.reduce(0) { $0 + $1.members.count })
        for (i, z) in policy.zones.enumerated() {
            zone[z.name] = i
            for m in z.members { owner[m.value] = i }
        }
        self.zone = zone
        self.owner = owner
    }
}
