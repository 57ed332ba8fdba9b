import Glibc
import Synchronization

/// Parsed policy files kept between loads, keyed by path and a hash of the content: a daemon
/// reload (a file edit, an etcd event) parses only the files whose content changed, and does not
/// even read a file whose stamp is what it was at a read that found it settled (`FileStamp`).
public final class ParseCache: Sendable {
    struct Entry: Sendable {
        var hash: UInt64
        var length: Int
        var fragment: FileFragment
        var diagnostics: [Diagnostic]
        /// The file's stamp when it was read, if its last change was already settled then.
        var stamp: FileStamp?
    }
    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// Files served from the cache and files parsed, since the cache was made.
    public var counts: (hits: Int, misses: Int) { stats.withLock { $0 } }
    private let stats = Mutex((hits: 0, misses: 0))

    /// Files served from the cache without being read (their stamp was unchanged), counted in `hits` too.
    public var unreadFiles: Int { unread.withLock { $0 } }
    private let unread = Mutex(0)

    /// 64-bit FNV-1a of the text, 8 bytes at a time (a daemon hashes every file on every
    /// reload: megabytes at 10,000 zones): stable, and cheap next to parsing YAML.
    static func hash(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { bytes in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            guard let base = bytes.baseAddress else { return h }
            let raw = UnsafeRawPointer(base)
            let words = bytes.count / 8
            for w in 0..<words { h = (h ^ raw.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)) &* 0x100_0000_01b3 }
            for b in bytes[(words * 8)...] { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            return h
        }
    }

    func lookup(_ file: PolicyFile, hash: UInt64) -> (FileFragment, [Diagnostic])? {
        let hit = entries.withLock { e -> (FileFragment, [Diagnostic])? in
            guard let entry = e[file.path], entry.hash == hash, entry.length == file.contents.utf8.count else { return nil }
            return (entry.fragment, entry.diagnostics)
        }
        stats.withLock { hit == nil ? ($0.misses += 1) : ($0.hits += 1) }
        return hit
    }

    /// The parse of a file that was not read again: its stamp is the one it had when it was read.
    func unchanged(_ path: String, stamp: FileStamp) -> (FileFragment, [Diagnostic], FileKey)? {
        let hit = entries.withLock { e -> (FileFragment, [Diagnostic], FileKey)? in
            guard let entry = e[path], entry.stamp == stamp else { return nil }
            return (entry.fragment, entry.diagnostics, FileKey(hash: entry.hash, length: entry.length))
        }
        if hit != nil { stats.withLock { $0.hits += 1 }; unread.withLock { $0 += 1 } }
        return hit
    }

    func store(_ file: PolicyFile, hash: UInt64, _ parsed: (FileFragment, [Diagnostic])) {
        entries.withLock {
            $0[file.path] = Entry(hash: hash, length: file.contents.utf8.count, fragment: parsed.0, diagnostics: parsed.1,
                                  stamp: file.stamp)
        }
    }

    /// Records a read file's stamp on its entry, whose content was found unchanged by its hash.
    func restamp(_ file: PolicyFile) {
        entries.withLock { $0[file.path]?.stamp = file.stamp }
    }

    /// The last load's resolved policy, when it had no diagnostics (kept by `PolicyLoader.parse`
    /// for loads without lints).
    var lastResolved: ResolvedPolicy? { resolved.withLock { $0 } }
    private let resolved = Mutex<ResolvedPolicy?>(nil)

    func remember(_ r: ResolvedPolicy?) { resolved.withLock { $0 = r } }

    /// How many loads patched the last resolve instead of resolving again, since the cache was made.
    public var patchedLoads: Int { patches.withLock { $0 } }
    let patches = Mutex(0)

    /// Forgets files that are gone.
    func keep(only paths: Set<String>) {
        entries.withLock { e in e = e.filter { paths.contains($0.key) } }
    }
}

/// What `stat` says of a file: its identity, size and times. A daemon's reload reads only the
/// files whose stamp changed since they were read (at 10,000 zones, reading and hashing every
/// file took most of a one-file edit's load).
///
/// A stamp is trusted only when the file's last change was at least a second old when it was
/// stamped (`settled`): file times come from a coarse clock, so a write in the same tick as
/// the read, keeping the size, could leave the stamp as it was ("racy clean", as git calls
/// it). A file edited just before a read is read again at the next load. An editor's atomic
/// rename gives a new inode; `touch -d`, `cp -p` and the like cannot set the change time.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modified: Int64
    var changed: Int64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        modified = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        changed = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
    }

    /// Whether the file's last change was at least a second before `now` (ns since the epoch).
    func isSettled(at now: Int64) -> Bool {
        max(modified, changed) <= now - 1_000_000_000
    }

    /// The wall clock in ns since the epoch, as file times count.
    static var now: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
