import Foundation

/// A cgroup tree in memory, for tests of what consumes `CgroupSource` (no kernel, no root).
public final class InMemoryCgroupSource: CgroupSource, @unchecked Sendable {
    private let lock = NSLock()
    private var tree: [String: UInt64] = [:]
    private var nextID: UInt64 = 1000
    private var subscribers: [UUID: (CgroupMatcher, AsyncStream<CgroupEvent>.Continuation)] = [:]

    /// A tree holding only the root.
    public init() { tree["/"] = 1 }

    /// Creates the cgroup at `path` (parents must exist) with a fresh id, as mkdir would; returns the id.
    @discardableResult
    public func mkdir(_ path: String) -> UInt64 {
        let p = CgroupIdentity.normalize(path)
        let (id, subs) = lock.withLock { () -> (UInt64, [(CgroupMatcher, AsyncStream<CgroupEvent>.Continuation)]) in
            nextID += 1
            tree[p] = nextID
            return (nextID, Array(subscribers.values))
        }
        let resolved = ResolvedCgroup(path: p, id: id, level: CgroupIdentity.level(of: p))
        for (matcher, c) in subs { for identity in matcher.matching(p) { c.yield(.appeared(identity, resolved)) } }
        return id
    }

    /// Removes the cgroup at `path`, as rmdir would.
    public func rmdir(_ path: String) {
        let p = CgroupIdentity.normalize(path)
        let (id, subs) = lock.withLock { (tree.removeValue(forKey: p), Array(subscribers.values)) }
        guard let id else { return }
        let resolved = ResolvedCgroup(path: p, id: id, level: CgroupIdentity.level(of: p))
        for (matcher, c) in subs { for identity in matcher.matching(p) { c.yield(.vanished(identity, resolved)) } }
    }

    /// Sends every subscriber a `.resynced`, as a lost inotify queue would.
    public func forceResync() {
        let subs = lock.withLock { Array(subscribers.values) }
        for (matcher, c) in subs { c.yield(.resynced(matcher.snapshot(pairs()))) }
    }

    public func snapshot(for identities: Set<CgroupIdentity>) -> CgroupSnapshot {
        CgroupMatcher(identities).snapshot(pairs())
    }

    public func events(for identities: Set<CgroupIdentity>) -> AsyncStream<CgroupEvent> {
        let matcher = CgroupMatcher(identities)
        let (stream, continuation) = AsyncStream<CgroupEvent>.makeStream()
        let key = UUID()
        lock.withLock {
            // Registered and snapshotted under one lock: no change falls between them.
            continuation.yield(.resynced(matcher.snapshot(tree.map { ($0.key, $0.value) })))
            subscribers[key] = (matcher, continuation)
        }
        continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.subscribers.removeValue(forKey: key) } }
        return stream
    }

    private func pairs() -> [(path: String, id: UInt64)] { lock.withLock { tree.map { ($0.key, $0.value) } } }
}
