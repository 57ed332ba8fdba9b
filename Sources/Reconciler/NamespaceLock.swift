import Foundation
import NetworkNamespace

#if canImport(Glibc)
import Glibc
#endif

/// One zonewall at a time changes a network namespace's table. `zonewall run` holds this lock for
/// as long as it runs; `apply` and `remove` while they work. Two controllers of one table undo
/// each other's commits for ever, each repairing the other's "drift", and traffic flips between
/// two policies many times a second.
///
/// `flock(2)` on the namespace's own nsfs file (`/run/netns/NAME`, or `/proc/self/ns/net`): one
/// inode per namespace however it is reached, so `--netns X` and a process already inside X
/// find the same lock, no lock file is left behind, and the kernel drops the lock when its
/// holder dies, however it dies. Who holds it is written beside, in `DIRECTORY/netns-DEV-INODE`,
/// for the refusal message only.
public final class NamespaceLock: Sendable {
    /// Another process holds the lock.
    public struct Held: Error, CustomStringConvertible, Sendable {
        /// What the holder wrote: `zonewall run, policies /etc/zonewall (pid 123)`, or "" when unknown.
        public let holder: String
        public let place: String

        /// Who holds the lock, as the holder described itself.
        public var who: String { holder.isEmpty ? "another zonewall" : holder }

        public var description: String {
            "\(place) is already managed by \(who); two controllers of one table "
                + "undo each other's commits. Stop it, or change the policy it enforces"
        }
    }

    public static let defaultDirectory = "/run/zonewall/locks"

    private let fd: Int32
    private let infoPath: String

    private init(fd: Int32, infoPath: String) {
        self.fd = fd
        self.infoPath = infoPath
    }

    deinit {
        unlink(infoPath)  // before the lock goes: no successor has written it yet
        close(fd)
    }

    /// The namespace itself, `DEV-INODE` of its nsfs file, or nil when it cannot be examined.
    public static func identity(namespace: String?) -> String? { NetworkNamespace.identity(of: namespace) }

    /// Takes the lock of `namespace` (nil: this process's own), describing this process as
    /// `holder`. Nil when the namespace cannot be opened (opening the kernel will say why).
    /// Throws `Held` when another process holds it.
    public static func acquire(namespace: String?, holder: String, directory: String = defaultDirectory) throws(Held) -> NamespaceLock? {
        let fd = open(NetworkNamespace.file(of: namespace), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); return nil }
        let infoPath = "\(directory)/netns-\(st.st_dev)-\(st.st_ino)"
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            let text = (try? String(contentsOfFile: infoPath, encoding: .utf8)) ?? ""
            throw Held(holder: text.trimmingCharacters(in: .whitespacesAndNewlines),
                       place: namespace.map { "network namespace \($0)" } ?? "this network namespace")
        }
        // The description is a courtesy: without a writable directory the lock holds all the same.
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        let info = open(infoPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if info >= 0 {
            let line = Array((holder + "\n").utf8)
            _ = write(info, line, line.count)
            close(info)
        }
        sweepStale(directory: directory, except: infoPath)
        return NamespaceLock(fd: fd, infoPath: infoPath)
    }

    /// Removes the descriptions whose holder is gone: a holder killed with SIGKILL (its lock went
    /// with it) leaves its file behind, one per namespace it held. A description names its
    /// holder's pid as `(pid N)`; one without a pid, or of a live process, stays.
    static func sweepStale(directory: String, except kept: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix("netns-") {
            let path = "\(directory)/\(name)"
            guard path != kept, let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let open = text.range(of: "(pid ", options: .backwards),
                  let close = text[open.upperBound...].firstIndex(of: ")"),
                  let pid = Int32(text[open.upperBound..<close]), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { unlink(path) }
        }
    }
}
