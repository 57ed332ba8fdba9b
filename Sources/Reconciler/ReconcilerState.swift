import Foundation
import NetworkNamespace
import Ruleset
import ZonePolicy

/// What the daemon reports about itself: written atomically to the state file, shown by
/// `zonewall status`, and mirrored in the metrics.
public struct ReconcilerState: Codable, Hashable, Sendable {
    /// Digest of the rule set being enforced (FNV-1a 64 of its nft text), nil before the first apply.
    public var policyDigest: String?
    public var policyDirectory: String
    /// The network namespace the daemon governs (`--netns`), nil for its own.
    public var namespace: String?
    /// That namespace itself (`NamespaceLock.identity`): a namespace created later under the
    /// same name is another one, which this daemon does not govern. Nil in files written before.
    public var namespaceID: String?
    /// The namespace's cookie (`NetworkNamespace.cookie`): the kernel reuses nsfs inode numbers,
    /// so a namespace deleted and created again can have the same `namespaceID`, never the same
    /// cookie. Nil in files written before, or where it could not be read.
    public var namespaceCookie: UInt64?
    public var pid: Int32
    public var startedAt: Date

    public var lastApplyAt: Date?
    public var lastApplyReason: String?
    public var lastApplyDurationSeconds: Double?
    /// Objects or elements changed by the last apply.
    public var lastApplyChanges: Int?
    public var lastSuccessAt: Date?

    /// The last error (policy or kernel), cleared by the next success.
    public var lastError: String?
    /// The policy diagnostics behind `lastError`, as `path:line:col: error: …` lines.
    public var lastErrorDiagnostics: [String]
    public var lastErrorAt: Date?

    public var applies: Int
    public var applyFailures: Int
    public var driftRepairs: Int
    public var policyLoadErrors: Int
    /// Whether the kernel held the desired rule set at the last check.
    public var inSync: Bool

    /// True while the daemon enforces the table it found in force at start, because the policy
    /// files had errors then: no policy has been loaded, so zones, members and rules count 0.
    public var enforcingTableFoundAtStart: Bool?
    public var zones: Int
    public var members: Int
    public var rules: Int
    public var elements: Int
    /// Each identity zone's resolved cgroups (path, id, level) and uids, one line each; nil before any.
    public var identities: [String]?
    /// Each identity zone (units, cgroups, users) with how many cgroups and uids it resolves
    /// to now, zero included: the `zonewall_identity_*` metrics.
    public var identityCounts: [String: IdentityCount]?
    /// The outside member source (etcd), when one is configured.
    public var memberSource: MemberSourceStatus? = nil

    /// Established flows revoked since start (nil before the first): their conntrack entries
    /// were deleted after a commit that removed their permission.
    public var revokedFlows: Int?
    /// The same, by `"FROM TO"` zone pair (the metric's labels).
    public var revokedFlowsByPair: [String: Int]?

    /// How the daemon compiles and commits: `--scope` (`all` or `local`) and whether it owns its
    /// table (`--own-table`), so that `zonewall status` compares the kernel with what this
    /// daemon would program, not with the whole policy. Nil in files written before.
    public var scope: String?
    public var ownedTable: Bool?
    /// Where the daemon keeps its last known etcd members (`<state-directory>/etcd-members.json`),
    /// so that `status` merges the same members whatever `--state-directory` the daemon had.
    public var memberCache: String?

    /// `run --confirm-edits`: the deadline of the edit waiting for `zonewall confirm`.
    public var pendingConfirmationDeadline: Date?
    /// Set when an unconfirmed edit was reverted; cleared by the next edit.
    public var revertedEdit: String?

    public init(policyDirectory: String, namespace: String? = nil, pid: Int32, startedAt: Date = Date()) {
        self.policyDirectory = policyDirectory
        self.namespace = namespace
        self.namespaceID = NamespaceLock.identity(namespace: namespace)
        self.namespaceCookie = NetworkNamespace.cookie(of: namespace)
        self.pid = pid
        self.startedAt = startedAt
        self.lastErrorDiagnostics = []
        self.applies = 0
        self.applyFailures = 0
        self.driftRepairs = 0
        self.policyLoadErrors = 0
        self.inSync = false
        self.zones = 0
        self.members = 0
        self.rules = 0
        self.elements = 0
    }
}

/// How an outside source of zone members (etcd) is doing, as the state file and metrics show it.
public struct MemberSourceStatus: Codable, Hashable, Sendable {
    /// `etcd`.
    public var kind: String
    /// Reachable and followed; false means the last known members stay in force (fail-static).
    public var connected: Bool
    /// Why it is not connected, while it is not.
    public var lostReason: String?
    /// When it was last lost, or last came back.
    public var since: Date
    /// Registered instances and the addresses they bring.
    public var instances: Int
    public var addresses: Int
    /// Keys ignored right now (malformed, unknown zone, address taken), and how many were ever reported.
    public var rejectedKeys: Int
    public var rejectionsTotal: Int
    /// The revision the member feed has reached: the last list's, then each watch event's.
    public var revision: Int64?

    public init(kind: String, connected: Bool, lostReason: String?, since: Date, instances: Int, addresses: Int,
                rejectedKeys: Int, rejectionsTotal: Int, revision: Int64?) {
        self.kind = kind
        self.connected = connected
        self.lostReason = lostReason
        self.since = since
        self.instances = instances
        self.addresses = addresses
        self.rejectedKeys = rejectedKeys
        self.rejectionsTotal = rejectionsTotal
        self.revision = revision
    }
}

/// Writes and reads the state file atomically (write to a temporary file, then rename).
public struct StateFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The state file of the daemon that governs `namespace` (nil: the current one) with the
    /// policy in `policyDirectory`: state belongs to one namespace and one policy directory, so
    /// `status --netns B` never shows the report of a daemon that managed namespace A.
    ///
    /// The namespace is named by its identity (`NamespaceLock.identity`) when it can be examined:
    /// `--netns X`, `--netns /run/netns/X` and a process inside X then find the same file, and
    /// a namespace created again under the same name does not find its predecessor's.
    public static func defaultPath(namespace: String?, policyDirectory: String, directory: String = "/run/zonewall") -> String {
        let place = NamespaceLock.identity(namespace: namespace).map { "ns-\($0)" }
            ?? namespace.map { "netns-" + $0.replacingOccurrences(of: "/", with: "_") } ?? "host"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in canonicalDirectory(policyDirectory).utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\(directory)/state-\(place)-\(String(hash, radix: 16)).json"
    }

    /// `path` absolute, with symlinks resolved: one policy directory has one name.
    public static func canonicalDirectory(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Writes the state (`PrivateFile`: 0600, its directory 0700 when missing, atomically).
    public func write(_ state: ReconcilerState) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try PrivateFile.write(try encoder.encode(state), to: path)
    }

    public func read() throws -> ReconcilerState {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(ReconcilerState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// FNV-1a, 64 bit: a stable fingerprint of the enforced rule set (not a security hash).
public enum Digest {
    /// The digest of a table's content, independent of the listing order of its sets and chains.
    ///
    /// It hashes the skeleton's nft text and then each set's name and the digest of its
    /// elements, so a table with half a million elements is never rendered as text for it.
    public static func of(_ table: Table) -> String { DigestCache().of(table) }

    /// The digest of one set's elements: its layout, then its key bytes and data.
    static func of(_ elements: ElementList) -> UInt64 {
        var h = FNV1a64()
        // Every variable-length part is preceded by its length, so bytes cannot move from
        // one part to the next without changing the digest.
        h.add(length: elements.count)
        h.add(length: elements.componentWidths.count)
        h.add(elements.componentWidths.map { UInt8(truncatingIfNeeded: $0) })
        elements.sortedByKey().withStorage { keys, data in
            h.addWords(keys)
            h.add(length: data.count)
            for d in data {
                switch d {
                case .verdict(let v):
                    // The verdict's kind and chain, hashed in place: no lookup per element.
                    switch v {
                    case .accept: h.add(length: 1)
                    case .drop: h.add(length: 2)
                    case .continue: h.add(length: 3)
                    case .return: h.add(length: 4)
                    case .jump(let chain): h.add(length: 5); h.add(length: chain.utf8.count); h.add(chain.utf8)
                    case .goto(let chain): h.add(length: 6); h.add(length: chain.utf8.count); h.add(chain.utf8)
                    }
                case .value(let v):
                    h.add(length: v.width); h.add(v.bytes)
                }
            }
        }
        return h.value
    }
}

/// `Digest.of` for a daemon, which digests its table after every edit: the digest of a set's
/// elements is kept, and reused while the table holds the very same element storage (an edit
/// rebuilds only the sets it changes; the others keep their storage).
public final class DigestCache: @unchecked Sendable {
    private var sets: [String: (elements: ElementList, digest: UInt64)] = [:]
    /// The last table digested and its skeleton's digest.
    private var skeleton: (table: Table, digest: UInt64)?

    public init() {}

    public func of(_ table: Table) -> String {
        var h = FNV1a64()
        if let skeleton, skeleton.table.hasSkeleton(of: table) {
            withUnsafeBytes(of: skeleton.digest.littleEndian) { h.add($0) }
        } else {
            // The skeleton's text piece by piece, each set and chain with its length.
            var s = FNV1a64()
            NftText.forEachPiece(of: table.normalizedSkeleton) { piece in
                s.add(length: piece.utf8.count); s.add(piece.utf8)
            }
            withUnsafeBytes(of: s.value.littleEndian) { h.add($0) }
            skeleton = (table, s.value)
        }
        var kept: [String: (elements: ElementList, digest: UInt64)] = [:]
        kept.reserveCapacity(table.sets.count)
        for set in table.sets.sorted(by: { $0.name < $1.name }) {
            let digest: UInt64
            if let cached = sets[set.name], cached.elements.sharesStorage(with: set.elements) {
                digest = cached.digest
            } else {
                digest = Digest.of(set.elements)
            }
            kept[set.name] = (set.elements, digest)
            h.add(length: set.name.utf8.count); h.add(set.name.utf8)
            withUnsafeBytes(of: digest.littleEndian) { h.add($0) }
        }
        sets = kept
        skeleton?.table = table  // the table in force, whose storage the daemon holds anyway
        return String(h.value, radix: 16).leftPadded(16)
    }
}

/// 64-bit FNV-1a: stable across runs and machines, unlike `Hasher`.
struct FNV1a64 {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(length: Int) {
        withUnsafeBytes(of: UInt64(length).littleEndian) { add($0) }
    }

    /// FNV-1a over 8-byte words, then the last bytes one by one: for set elements' key bytes,
    /// megabytes of them in a large table.
    mutating func addWords(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress else { return }
        let raw = UnsafeRawPointer(base)
        let words = bytes.count / 8
        var v = value
        for w in 0..<words {
            v ^= raw.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
            v = v &* 0x100_0000_01b3
        }
        value = v
        add(UnsafeBufferPointer(rebasing: bytes[(words * 8)...]))
    }

    mutating func add(_ bytes: some Sequence<UInt8>) {
        for b in bytes {
            value ^= UInt64(b)
            value = value &* 0x100_0000_01b3
        }
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// What one identity zone resolves to.
public struct IdentityCount: Codable, Hashable, Sendable {
    public var cgroups: Int
    public var uids: Int

    public init(cgroups: Int, uids: Int) {
        self.cgroups = cgroups
        self.uids = uids
    }
}
