import Synchronization

/// Parsed policy files kept between loads, keyed by path and a hash of the content: a daemon
/// reload (a file edit, an etcd event) parses only the files whose content changed.
public final class ParseCache: Sendable {
    struct Entry: Sendable {
        var hash: UInt64
        var length: Int
        var fragment: FileFragment
        var diagnostics: [Diagnostic]
    }
    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// Files served from the cache and files parsed, since the cache was made.
    public var counts: (hits: Int, misses: Int) { stats.withLock { $0 } }
    private let stats = Mutex((hits: 0, misses: 0))

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

    func store(_ file: PolicyFile, hash: UInt64, _ parsed: (FileFragment, [Diagnostic])) {
        entries.withLock { $0[file.path] = Entry(hash: hash, length: file.contents.utf8.count, fragment: parsed.0, diagnostics: parsed.1) }
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
