import Foundation
import ZonePolicy

/// A change that must be confirmed with `zonewall confirm` before its deadline, or it is undone.
public struct PendingConfirmation: Codable, Hashable, Sendable {
    /// Who undoes the change when no confirmation comes.
    public enum Owner: String, Codable, Sendable {
        /// The guard process `zonewall apply --confirm` left behind.
        case apply
        /// `zonewall run --confirm-edits`.
        case daemon
    }

    public var owner: Owner
    /// The guard's or the daemon's pid.
    public var pid: Int32
    public var deadline: Date
    public var netns: String?
    public var policyDirectory: String
    /// When the change was committed.
    public var appliedAt: Date
    /// The namespace itself (`NamespaceLock.identity`), however it was named: `--netns X`, its
    /// path, or a process inside it. Nil in files written before it was recorded.
    public var namespaceID: String?

    public init(owner: Owner, pid: Int32, deadline: Date, netns: String?, policyDirectory: String, appliedAt: Date = Date()) {
        self.owner = owner
        self.pid = pid
        self.deadline = deadline
        self.netns = netns
        self.policyDirectory = policyDirectory
        self.appliedAt = appliedAt
        self.namespaceID = NamespaceLock.identity(namespace: netns)
    }
}

/// Where a pending confirmation lives: one per network namespace and policy directory, under
/// `/run/zonewall/confirm` (or `$ZONEWALL_CONFIRM_DIR`).
///
/// Confirming deletes the pending file; the owner claims an expired one by renaming it. Both
/// are single system calls on the same name, so exactly one of them wins a race at the deadline.
public struct ConfirmationStore: Sendable {
    public let directory: String
    /// `ns-DEV-INODE-HASH` (the namespace's identity, so that every spelling of it, `--netns A`,
    /// `--netns /run/netns/A` or a process inside it, finds the same window; its name when it
    /// cannot be examined), HASH being FNV-1a of the policy directory's absolute path.
    public let key: String

    public init(netns: String?, policyDirectory: String, directory: String? = nil) {
        self.directory = directory ?? ProcessInfo.processInfo.environment["ZONEWALL_CONFIRM_DIR"] ?? "/run/zonewall/confirm"
        let absolute = URL(fileURLWithPath: policyDirectory).standardizedFileURL.path
        var h = FNV1a64()
        h.add(absolute.utf8)
        let ns = NamespaceLock.identity(namespace: netns).map { "ns-\($0)" }
            ?? String((netns ?? "host").map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        key = "\(ns)-\(String(h.value, radix: 16))"
    }

    public var pendingPath: String { "\(directory)/\(key).pending.json" }
    var claimedPath: String { "\(directory)/\(key).claimed.json" }
    /// The last outcome (confirmed, or reverted and why), one line of text.
    public var outcomePath: String { "\(directory)/\(key).outcome" }
    /// The guard's log.
    public var logPath: String { "\(directory)/\(key).log" }

    /// Writes the pending confirmation atomically.
    public func begin(_ p: PendingConfirmation) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try PrivateFile.write(try encoder.encode(p), to: pendingPath)
    }

    /// The pending confirmation, if any.
    public func pending() -> PendingConfirmation? {
        guard let data = FileManager.default.contents(atPath: pendingPath) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(PendingConfirmation.self, from: data)
    }

    /// The pending confirmations of every policy directory in `netns` whose owner still runs:
    /// a plain `apply` over one of them would be undone at its deadline, silently.
    public static func pending(inNamespace netns: String?, directory: String? = nil) -> [PendingConfirmation] {
        let here = NamespaceLock.identity(namespace: netns)
        let dir = directory ?? ProcessInfo.processInfo.environment["ZONEWALL_CONFIRM_DIR"] ?? "/run/zonewall/confirm"
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".pending.json") }.sorted().compactMap { name in
            guard let data = FileManager.default.contents(atPath: "\(dir)/\(name)"),
                  let p = try? decoder.decode(PendingConfirmation.self, from: data),
                  p.namespaceID.map({ $0 == here }) ?? (p.netns == netns), kill(p.pid, 0) == 0 else { return nil }
            return p
        }
    }

    /// Confirms: deletes the pending file. Returns what was confirmed, nil when nothing was pending
    /// (or its owner already claimed it at the deadline); throws when the file cannot be deleted
    /// (not root: the directory is root's alone), so that is never taken for "nothing pending".
    public func confirm() throws(ConfirmationError) -> PendingConfirmation? {
        let p = pending()
        guard unlink(pendingPath) == 0 else {
            let e = errno
            if e == ENOENT { return nil }
            throw ConfirmationError(path: pendingPath, errno: e)
        }
        record("confirmed at \(ISO8601DateFormatter().string(from: Date()))")
        return p
    }

    /// The owner claims an expired confirmation; false when `confirm` got there first.
    public func claim() -> Bool {
        guard rename(pendingPath, claimedPath) == 0 else { return false }
        unlink(claimedPath)
        return true
    }

    /// Gives up a window without undoing anything (the change failed, or a new window replaces it).
    public func cancel() { unlink(pendingPath) }

    /// Records the outcome of the last window.
    public func record(_ outcome: String) {
        try? PrivateFile.write(Data((outcome + "\n").utf8), to: outcomePath)
    }

    /// The outcome of the last window, if any.
    public func lastOutcome() -> String? {
        (try? String(contentsOfFile: outcomePath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A confirmation that could not be made: the pending file could not be deleted.
public struct ConfirmationError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32

    public var description: String {
        let why = errno == EACCES || errno == EPERM ? " (confirming needs root, as the change did)" : ""
        return "cannot confirm: deleting \(path): \(String(cString: strerror(errno)))\(why)"
    }
}
