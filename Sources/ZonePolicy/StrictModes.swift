import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `stat(2)` says about a path, as far as `StrictModes` cares.
public struct FileOwnership: Hashable, Sendable {
    /// The owner's user id.
    public var uid: UInt32
    /// Permission bits, with the setuid/setgid/sticky bits (`st_mode & 07777`).
    public var mode: UInt32
    /// Whether it is a directory.
    public var isDirectory: Bool

    /// An ownership record, e.g. for a test's fake file system.
    public init(uid: UInt32, mode: UInt32, isDirectory: Bool) {
        self.uid = uid
        self.mode = mode
        self.isDirectory = isDirectory
    }
}

/// OpenSSH's StrictModes for policy files: zonewall runs as root, so whoever can change its
/// policy can open the firewall. The policy directory, each policy file, and every directory
/// above them up to `/` must be owned by root (or by the daemon's own user) and writable by
/// neither group nor others.
///
/// One exception, as sshd makes it: a root-owned directory with the sticky bit (`/tmp`) may be
/// world-writable when it is only a parent, because others can create entries in it but
/// cannot rename or remove ours.
///
/// The file system is reached only through the two closures, so the rules are tested on a fake.
public struct StrictModes: Sendable {
    /// Owners accepted besides nobody else: root and the daemon's effective user.
    public var trustedOwners: Set<UInt32>
    /// `stat(2)` following symlinks; nil when the path cannot be examined.
    public var stat: @Sendable (String) -> FileOwnership?
    /// The canonical path (`realpath(3)`), so symlinked directories are checked where they lead.
    public var resolve: @Sendable (String) -> String
    /// A user name for a uid, for messages.
    public var userName: @Sendable (UInt32) -> String?

    /// Rules over an arbitrary file system (tests pass a dictionary-backed one).
    public init(trustedOwners: Set<UInt32>,
                stat: @escaping @Sendable (String) -> FileOwnership?,
                resolve: @escaping @Sendable (String) -> String = { $0 },
                userName: @escaping @Sendable (UInt32) -> String? = { _ in nil }) {
        self.trustedOwners = trustedOwners
        self.stat = stat
        self.resolve = resolve
        self.userName = userName
    }

    /// The real file system, trusting root and the current effective user.
    public static var system: StrictModes {
        StrictModes(
            trustedOwners: [0, UInt32(geteuid())],
            stat: ownership(of:),
            resolve: { path in
                guard let p = realpath(path, nil) else { return path }
                defer { free(p) }
                return String(cString: p)
            },
            userName: { uid in
                guard let pw = getpwuid(uid_t(uid)) else { return nil }
                return String(cString: pw.pointee.pw_name)
            })
    }

    /// Every insecure path among `directory`, `files` (paths inside it) and their parents, as
    /// errors; empty when the policy may be trusted. Each path is reported once.
    public func check(directory: String, files: [String]) -> [Diagnostic] {
        var checked: Set<String> = []
        var out: [Diagnostic] = []
        func visit(_ path: String, isTarget: Bool) {
            guard checked.insert(path).inserted else { return }
            if let d = problem(at: path, asParent: !isTarget) { out.append(d) }
        }
        /// The path itself, then each directory above it, lexically and where symlinks lead:
        /// a symlink's target and the directory that holds the symlink both decide what is read.
        func visitChain(_ path: String) {
            visit(Self.normalized(path), isTarget: true)
            for p in [Self.normalized(path), resolve(path)] {
                for parent in Self.parents(of: p) { visit(parent, isTarget: false) }
            }
            let real = resolve(path)
            if real != Self.normalized(path) { visit(real, isTarget: true) }
        }
        visitChain(directory)
        for f in files { visitChain(f) }
        return out
    }

    /// `check(directory:files:)` for the policy files the loader would read in `directory`.
    public func check(policyDirectory directory: String) -> [Diagnostic] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        return check(directory: directory, files: names.filter(PolicyLoader.isPolicyFileName).sorted().map { base + $0 })
    }

    /// The directories a state file of the daemon's is written in (`path` itself need not exist
    /// yet): one that others can write would let them replace what `status` shows and what a
    /// restart reads back (the member cache). Errors, as for the policy.
    public func check(stateFile path: String) -> [Diagnostic] {
        var out: [Diagnostic] = []
        var checked: Set<String> = []
        for p in [Self.normalized(path), resolve(path)] {
            for parent in Self.parents(of: p) where checked.insert(parent).inserted && stat(parent) != nil {
                if let d = problem(at: parent, asParent: true, subject: "state file") { out.append(d) }
            }
        }
        return out
    }

    /// Why `path` cannot be trusted, or nil.
    func problem(at path: String, asParent: Bool, subject: String = "policy") -> Diagnostic? {
        let place = SourceLocation(path: path, line: 0, column: 0)
        guard let st = stat(path) else {
            return .error(place, "cannot check permissions: the path cannot be examined",
                          hint: "zonewall refuses policy it cannot prove only root can change")
        }
        let foreignOwner = !trustedOwners.contains(st.uid)
        var groupWritable = st.mode & 0o020 != 0
        var otherWritable = st.mode & 0o002 != 0
        // /tmp-like: others may add entries but not replace ours.
        if asParent && st.isDirectory && st.uid == 0 && st.mode & 0o1000 != 0 { groupWritable = false; otherWritable = false }
        guard foreignOwner || groupWritable || otherWritable else { return nil }

        let owner = userName(st.uid).map { "\($0) (uid \(st.uid))" } ?? "uid \(st.uid)"
        let mode = "0" + String(st.mode, radix: 8)
        var wrongs: [String] = []
        if foreignOwner { wrongs.append("owned by \(owner), not root") }
        let writers = [groupWritable ? "its group" : nil, otherWritable ? "others" : nil].compactMap { $0 }
        if !writers.isEmpty { wrongs.append("writable by \(writers.joined(separator: " and "))") }
        var fixes: [String] = []
        if !writers.isEmpty { fixes.append("chmod go-w '\(path)'") }
        if foreignOwner { fixes.append("chown root '\(path)'") }
        let what = asParent ? "directory above the \(subject)" : (st.isDirectory ? "\(subject) directory" : "\(subject) file")
        return .error(place, "insecure permissions on \(what): \(wrongs.joined(separator: ", ")) (owner \(owner), mode \(mode))",
                      hint: "run \(fixes.joined(separator: " and ")); zonewall runs as root and refuses a \(subject) that others "
                          + "can change (like sshd's StrictModes)")
    }

    /// `/a/b/../c/` → `/a/c`; relative paths are made absolute against the working directory.
    static func normalized(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for c in absolute.split(separator: "/") {
            switch c {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(c)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The directories above an absolute path, nearest first, ending with `/`.
    static func parents(of path: String) -> [String] {
        var out: [String] = []
        var p = normalized(path)
        while p != "/" {
            p = (p as NSString).deletingLastPathComponent
            if p.isEmpty { p = "/" }
            out.append(p)
        }
        return out
    }
}

/// `stat(2)` of `path`, following symlinks (outside `StrictModes`, whose `stat` shadows the call).
private func ownership(of path: String) -> FileOwnership? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return FileOwnership(uid: st.st_uid, mode: UInt32(st.st_mode) & 0o7777, isDirectory: (st.st_mode & S_IFMT) == S_IFDIR)
}
