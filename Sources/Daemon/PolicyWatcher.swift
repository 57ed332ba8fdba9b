#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ZonePolicy

/// Watches a policy directory with inotify and reports each change.
///
/// It covers what operators and tools actually do: create, modify and delete; editors that
/// save through a temporary file and a rename; ConfigMap-style symlink swaps (`..data`); and the
/// directory itself being replaced (the parent is watched too, and watches are re-armed). A
/// path that comes to lead elsewhere without an event in the watched directories (a symbolic
/// link higher up swapped to a new release, a parent renamed away and made again) is noticed by
/// its identity, checked every `identityInterval`.
public final class PolicyWatcher: @unchecked Sendable {
    private let directory: String
    private let inotify: Int32
    private let wake: (read: Int32, write: Int32)
    private let continuation: AsyncStream<String>.Continuation
    /// Changes, one description per inotify event batch.
    public let changes: AsyncStream<String>

    public init(directory: String) throws {
        // Not `standardizingPath`, which resolves symbolic links: the path is what is watched.
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        inotify = inotify_init1(Int32(IN_CLOEXEC))
        guard inotify >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        wake = (fds[0], fds[1])
        (changes, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(256))
    }

    /// Starts the reader thread.
    ///
    /// The thread holds the watcher only while it runs. Keeping the `Thread` in a property made a
    /// cycle (watcher → thread → closure → watcher) that leaked every watcher with its inotify
    /// and pipe descriptors (LeakSanitizer, `scripts/test --sanitize`).
    public func start() {
        arm()
        let t = Thread { [self] in readLoop() }
        t.name = "zonewall-inotify"
        t.start()
    }

    /// Stops the reader thread and ends `changes`.
    public func stop() {
        var b: UInt8 = 1
        _ = write(wake.write, &b, 1)
    }

    deinit {
        close(inotify)
        close(wake.read)
        close(wake.write)
    }

    private var dirWatch: Int32 = -1
    private var parentWatch: Int32 = -1
    /// A directory's device and inode.
    private struct Identity: Equatable {
        var dev: UInt64, ino: UInt64
    }
    /// What the path led to at the last look (nil: nothing).
    private var seenIdentity: Identity?
    /// How often the path's identity is compared with the last one seen, in milliseconds.
    static let identityInterval: Int32 = 2_000

    private var identity: Identity? {
        var st = stat()
        guard stat(directory, &st) == 0 else { return nil }
        return Identity(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
    }

    /// (Re-)adds the watches; a replaced directory gets a fresh watch on its new inode. With
    /// `parentToo`, the parent's watch as well (the path now leads through another parent).
    private func arm(parentToo: Bool = false) {
        if parentToo, parentWatch >= 0 {
            inotify_rm_watch(inotify, parentWatch)
            parentWatch = -1
        }
        seenIdentity = identity
        if dirWatch >= 0 { inotify_rm_watch(inotify, dirWatch) }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
                          | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
        dirWatch = inotify_add_watch(inotify, directory, mask)
        if parentWatch < 0 {
            let parent = (directory as NSString).deletingLastPathComponent
            parentWatch = inotify_add_watch(inotify, parent.isEmpty ? "/" : parent,
                                            UInt32(IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))
        }
    }

    private func readLoop() {
        let base = (directory as NSString).lastPathComponent
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, dirWatch < 0 ? 500 : Self.identityInterval)
            if n < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 { break }
            if n == 0 {
                if dirWatch < 0 {
                    // The directory was missing; see whether it is back.
                    arm(parentToo: true)
                    if dirWatch >= 0 { continuation.yield("directory reappeared") }
                } else if case let now = identity, now != seenIdentity {
                    // Gone: reloading says so (and keeps the rules in force); back or elsewhere: watch it.
                    if now == nil {
                        seenIdentity = nil
                        continuation.yield("the policy path no longer leads to a directory")
                    } else {
                        let wasGone = seenIdentity == nil
                        arm(parentToo: true)
                        continuation.yield(wasGone ? "the policy path leads to a directory again" : "the policy path now leads to another directory")
                    }
                }
                continue
            }
            let count = read(inotify, &buffer, buffer.count)
            guard count > 0 else { continue }
            var offset = 0
            var reasons: [String] = []
            var names: [String] = []
            var rearm = false
            while offset < count {
                let (wd, mask, name) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, String) in
                    let e = raw.load(fromByteOffset: offset, as: inotify_event.self)
                    var name = ""
                    if e.len > 0 {
                        let start = offset + MemoryLayout<inotify_event>.size
                        let bytes = raw[start..<(start + Int(e.len))].prefix { $0 != 0 }
                        name = String(decoding: bytes, as: UTF8.self)
                    }
                    offset += MemoryLayout<inotify_event>.size + Int(e.len)
                    return (e.wd, e.mask, name)
                }
                if wd == parentWatch {
                    if name == base { reasons.append("directory replaced"); rearm = true }
                    continue
                }
                // A watch a re-arm removed: its IN_IGNORED (which must not re-arm again, for ever) and stragglers.
                guard wd == dirWatch else { continue }
                if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) != 0 { rearm = true }
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { reasons.append("inotify overflow") }
                if !name.isEmpty { names.append(name) }
            }
            if rearm { arm() }
            reasons += Self.changedFiles(names)
            if !reasons.isEmpty { continuation.yield(reasons.joined(separator: ", ")) }
        }
        continuation.finish()
    }

    /// What a read of events says changed: each policy file named once, in order; other names
    /// (an editor's or sed's temporary files) only as "other files", when nothing else changed.
    static func changedFiles(_ names: [String]) -> [String] {
        var seen = Set<String>()
        let files = names.filter { PolicyLoader.isPolicyFileName($0) && seen.insert($0).inserted }
        return files.isEmpty && !names.isEmpty ? ["other files in the directory"] : files
    }
}
