import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cgroup2 hierarchy as a `CgroupSource`: a scan, then inotify on every cgroup directory.
///
/// Every directory is watched, not only the slices: a unit glob may match at any depth
/// (`user.slice/user-1000.slice/user@1000.service/app.slice/…`), and a watch costs about a
/// kilobyte of kernel memory, so 5,000 cgroups cost about 5 MB.
public struct CgroupWatcher: CgroupSource {
    /// The cgroup2 mount point, e.g. `/sys/fs/cgroup/unified`.
    public var root: String

    /// A watcher of the hierarchy mounted at `root`.
    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// A watcher of this mount namespace's cgroup2 mount, or nil when cgroup2 is not mounted.
    public static func current() -> CgroupWatcher? { CgroupMount.current().map { CgroupWatcher(root: $0) } }

    public func snapshot(for identities: Set<CgroupIdentity>) -> CgroupSnapshot {
        var tree: [(path: String, id: UInt64)] = []
        walk("/") { path, id in tree.append((path, id)); return true }
        return CgroupMatcher(identities).snapshot(tree)
    }

    public func events(for identities: Set<CgroupIdentity>) -> AsyncStream<CgroupEvent> {
        let (stream, continuation) = AsyncStream<CgroupEvent>.makeStream()
        guard let loop = InotifyLoop(root: root, matcher: CgroupMatcher(identities), continuation: continuation) else {
            // No inotify (ENOSYS, EMFILE): still report what resolves now, once.
            continuation.yield(.resynced(snapshot(for: identities)))
            continuation.finish()
            return stream
        }
        continuation.onTermination = { _ in loop.stop() }
        let thread = Thread { loop.run() }
        thread.name = "zonewall-cgroup-watcher"
        thread.start()
        return stream
    }

    /// The cgroup at `path` (from the cgroup2 root) and its id, or nil when it does not exist.
    public func resolve(path: String) -> ResolvedCgroup? {
        let p = CgroupIdentity.normalize(path)
        guard let id = Self.inode(root + (p == "/" ? "" : p)) else { return nil }
        return ResolvedCgroup(path: p, id: id, level: CgroupIdentity.level(of: p))
    }

    /// The paths (from the cgroup2 root) of the cgroups with these ids, the inode numbers that
    /// sock_diag's `INET_DIAG_CGROUP_ID` reports; ids of removed cgroups are left out. One walk
    /// of the hierarchy, ended as soon as every id is found.
    public func paths(of ids: Set<UInt64>) -> [UInt64: String] {
        var found: [UInt64: String] = [:]
        guard !ids.isEmpty else { return found }
        walk("/") { path, id in
            if ids.contains(id) { found[id] = path }
            return found.count < ids.count
        }
        return found
    }

    /// Depth-first over the directories under `path`, parents first; `visit` returns false to skip a subtree.
    func walk(_ path: String, _ visit: (String, UInt64) -> Bool) {
        let full = root + (path == "/" ? "" : path)
        guard let id = Self.inode(full), visit(path, id) else { return }
        for child in Self.subdirectories(full) {
            walk(path == "/" ? "/" + child : path + "/" + child, visit)
        }
    }

    static func inode(_ path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return UInt64(st.st_ino)
    }

    static func subdirectories(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// The thread behind one `events` stream: owns an inotify descriptor and the watched tree.
final class InotifyLoop: @unchecked Sendable {
    private let watcher: CgroupWatcher
    private let matcher: CgroupMatcher
    private let continuation: AsyncStream<CgroupEvent>.Continuation
    private let inotify: Int32
    /// A pipe: `stop()` writes to `wakeWrite` to wake the poll on `wake`.
    private let wake: Int32
    private let wakeWrite: Int32
    // Touched only on the loop's thread.
    private var pathOfWatch: [Int32: String] = [:]
    private var watchOfPath: [String: Int32] = [:]
    /// Matched cgroups by path, with the identities they are.
    private var known: [String: (ResolvedCgroup, [CgroupIdentity])] = [:]

    private static let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)

    init?(root: String, matcher: CgroupMatcher, continuation: AsyncStream<CgroupEvent>.Continuation) {
        watcher = CgroupWatcher(root: root)
        self.matcher = matcher
        self.continuation = continuation
        inotify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard inotify >= 0 else { return nil }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { close(inotify); return nil }
        wake = ends[0]
        wakeWrite = ends[1]
    }

    // The pipe outlives the loop: `stop()` may come after `run()` returned, and must not write
    // into a descriptor number that was closed and reused meanwhile.
    deinit {
        close(wake)
        close(wakeWrite)
    }

    func stop() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    func run() {
        defer { close(inotify); continuation.finish() }
        resync()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue } else { return } }
            if fds[1].revents != 0 { return }
            let count = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            if count <= 0 { continue }
            var offset = 0
            var overflow = false
            while offset + 16 <= count {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    (raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                     Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let name = String(decoding: buffer[(offset + 16)..<(offset + 16 + length)].prefix(while: { $0 != 0 }), as: UTF8.self)
                offset += 16 + length
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflow = true; continue }
                if mask & UInt32(IN_IGNORED) != 0 {
                    if let p = pathOfWatch.removeValue(forKey: wd) { watchOfPath[p] = nil }
                    continue
                }
                guard let parent = pathOfWatch[wd], mask & UInt32(IN_ISDIR) != 0 else { continue }
                let path = parent == "/" ? "/" + name : parent + "/" + name
                if mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 {
                    added(path)
                } else if mask & UInt32(IN_DELETE | IN_MOVED_FROM) != 0 {
                    removed(path)
                }
            }
            // A lost queue may have hidden any change: rescan and replace the whole resolution.
            if overflow { resync() }
        }
    }

    /// Watches first, then lists: a child created in between is seen by one or the other (or both: `known` dedups).
    private func added(_ path: String) {
        watcher.walk(path) { p, id in
            watch(p)
            let identities = matcher.matching(p)
            if !identities.isEmpty, known[p]?.0.id != id {
                let resolved = ResolvedCgroup(path: p, id: id, level: CgroupIdentity.level(of: p))
                if let old = known[p] { for identity in old.1 { continuation.yield(.vanished(identity, old.0)) } }
                known[p] = (resolved, identities)
                for identity in identities { continuation.yield(.appeared(identity, resolved)) }
            }
            return true
        }
    }

    private func removed(_ path: String) {
        let gone = known.keys.filter { $0 == path || $0.hasPrefix(path + "/") }.sorted(by: >)
        for p in gone {
            guard let (resolved, identities) = known.removeValue(forKey: p) else { continue }
            for identity in identities { continuation.yield(.vanished(identity, resolved)) }
        }
        for p in watchOfPath.keys where p == path || p.hasPrefix(path + "/") {
            if let wd = watchOfPath.removeValue(forKey: p) { pathOfWatch[wd] = nil }
        }
    }

    private func watch(_ path: String) {
        guard watchOfPath[path] == nil else { return }
        let full = watcher.root + (path == "/" ? "" : path)
        let wd = inotify_add_watch(inotify, full, Self.mask)
        guard wd >= 0 else { return }
        pathOfWatch[wd] = path
        watchOfPath[path] = wd
    }

    private func resync() {
        var tree: [(path: String, id: UInt64)] = []
        known = [:]
        watcher.walk("/") { p, id in
            watch(p)
            tree.append((p, id))
            let identities = matcher.matching(p)
            if !identities.isEmpty { known[p] = (ResolvedCgroup(path: p, id: id, level: CgroupIdentity.level(of: p)), identities) }
            return true
        }
        continuation.yield(.resynced(matcher.snapshot(tree)))
    }
}
