import ZonePolicy
/// A change in what the policy's units and cgroups resolve to.
public enum CgroupEvent: Hashable, Sendable {
    /// A cgroup directory that is `identity` was created (or found by a scan).
    case appeared(CgroupIdentity, ResolvedCgroup)
    /// A cgroup directory that was `identity` was removed; its id no longer matches anything.
    case vanished(CgroupIdentity, ResolvedCgroup)
    /// The whole resolution, after a start or a lost inotify queue: it replaces everything before.
    case resynced(CgroupSnapshot)
}

/// Every identity with the cgroups it resolves to; identities found nowhere map to [].
public typealias CgroupSnapshot = [CgroupIdentity: [ResolvedCgroup]]

/// A source of cgroup appearances: the cgroup2 hierarchy for real, or an in-memory tree in tests.
public protocol CgroupSource: Sendable {
    /// What `identities` resolve to now.
    func snapshot(for identities: Set<CgroupIdentity>) -> CgroupSnapshot
    /// `.resynced` with the current resolution first, then every change until the stream is dropped.
    func events(for identities: Set<CgroupIdentity>) -> AsyncStream<CgroupEvent>
}

/// The matching shared by the real and the fake source: which identities a cgroup path is.
///
/// Indexed, so that a host with thousands of cgroups and a policy naming thousands of units is
/// resolved in time linear in both: cgroup paths and literal unit names are looked up, only
/// unit globs are tried one by one.
struct CgroupMatcher {
    var identities: [CgroupIdentity]
    private var byPath: [String: [CgroupIdentity]] = [:]
    private var byName: [String: [CgroupIdentity]] = [:]
    private var globs: [CgroupIdentity] = []

    init(_ identities: Set<CgroupIdentity>) {
        self.identities = identities.sorted()
        for identity in self.identities {
            switch identity {
            case .cgroup(let c): byPath[CgroupIdentity.normalize(c), default: []].append(identity)
            case .unit(let u) where Glob.isGlob(u): globs.append(identity)
            case .unit(let u): byName[u, default: []].append(identity)
            }
        }
    }

    /// The identities the cgroup at `path` is, in the order of `identities`.
    func matching(_ path: String) -> [CgroupIdentity] {
        var out = byPath[path] ?? []
        if path != "/", let name = path.split(separator: "/").last.map(String.init) {
            out += byName[name] ?? []
            out += globs.filter { $0.matches(path: path) }
        }
        return out.count > 1 ? out.sorted() : out
    }

    /// The snapshot of a whole tree given as (path, id) pairs.
    func snapshot(_ tree: [(path: String, id: UInt64)]) -> CgroupSnapshot {
        var out: CgroupSnapshot = [:]
        for identity in identities { out[identity] = [] }
        for (path, id) in tree {
            for identity in matching(path) {
                out[identity, default: []].append(ResolvedCgroup(path: path, id: id, level: CgroupIdentity.level(of: path)))
            }
        }
        for key in out.keys { out[key]?.sort() }
        return out
    }
}
