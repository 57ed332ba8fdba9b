/// A policy resolved without any diagnostic, with the fragments it was resolved from: what a
/// daemon's reload patches when an edit changed only zones' members.
///
/// Resolving checks every file against every other (zone names, rules' endpoints, members in
/// two zones): at 10,000 zones it takes tens of ms, where the edit that triggered it added one
/// member. `patched(to:fragments:)` gives the policy `PolicyResolver` would give, without
/// resolving, when it can prove that: every changed file declares the same zones, in the same
/// order, with the same everything but members and source locations, and the same rules,
/// expectations and settings; no zone lists a member twice; and no member added is also in
/// another zone. Whatever it cannot prove, it leaves to a full resolve (nil).
struct ResolvedPolicy: Sendable {
    /// The policy files, sorted by path, and what identifies each one's content.
    struct Files: Equatable, Sendable {
        var paths: [String]
        var keys: [FileKey]
    }

    var files: Files
    var fragments: [FileFragment]
    var policy: Policy

    /// The resolve of `fragments` (parsed from `files`, without diagnostics), when it is this
    /// one's policy with the changed files' zones put in; nil when it must be resolved.
    func patched(to new: Files, fragments newFragments: [FileFragment]) -> ResolvedPolicy? {
        guard new.paths == files.paths, newFragments.count == fragments.count else { return nil }
        let changed = new.keys.indices.filter { new.keys[$0] != files.keys[$0] }
        guard !changed.isEmpty else { return ResolvedPolicy(files: new, fragments: newFragments, policy: policy) }
        var zones = policy.zones
        var added: [(prefix: IPPrefix, zone: String)] = []
        for i in changed {
            let (old, now) = (fragments[i], newFragments[i])
            guard now.rules == old.rules, now.expectations == old.expectations, now.settings == old.settings,
                  now.zones.count == old.zones.count else { return nil }
            for (a, b) in zip(old.zones, now.zones) {
                guard Self.sameButMembers(a, b) else { return nil }
                let values = b.members.map(\.value)
                let distinct = Set(values)
                guard distinct.count == values.count else { return nil }  // listed twice: a warning to give
                for p in distinct.subtracting(a.members.map(\.value)) { added.append((p, b.name)) }
                // Zones are sorted by name, as `Policy` keeps them.
                let k = zones.partitioningIndex { $0.name >= b.name }
                guard k < zones.count, zones[k].name == b.name else { return nil }
                zones[k] = b
            }
        }
        guard !Self.anyInOtherZone(added, zones) else { return nil }  // an error to report
        var patched = self
        patched.files = new
        patched.fragments = newFragments
        patched.policy.zones = zones
        return patched
    }

    /// Whether the two declarations of a zone differ at most in their members and in where
    /// things are written.
    static func sameButMembers(_ a: Zone, _ b: Zone) -> Bool {
        a.name == b.name && a.description == b.description && a.audit == b.audit && a.lint == b.lint
            && a.units.map(\.value) == b.units.map(\.value) && a.cgroups.map(\.value) == b.cgroups.map(\.value)
            && a.users.map(\.value) == b.users.map(\.value) && a.interfaces.map(\.value) == b.interfaces.map(\.value)
    }

    /// Whether a zone other than the one that added it holds one of `added`.
    static func anyInOtherZone(_ added: [(prefix: IPPrefix, zone: String)], _ zones: [Zone]) -> Bool {
        guard !added.isEmpty else { return false }
        // One edit adds a member or a few: comparing each member with them beats hashing
        // 100,000 members.
        let owner = Dictionary(added.map { ($0.prefix, $0.zone) }, uniquingKeysWith: { a, b in a == b ? a : "" })
        if owner.values.contains("") { return true }  // two changed zones added the same prefix
        let prefixes = Array(owner.keys)
        let few = prefixes.count <= 8
        return zones.withUnsafeBufferPointer { zs in
            for z in zs {
                for m in z.members where few ? prefixes.contains(m.value) : owner[m.value] != nil {
                    if owner[m.value] != z.name { return true }
                }
            }
            return false
        }
    }
}

/// What identifies a policy file's content between loads: a hash of its text and its length.
struct FileKey: Equatable, Sendable {
    var hash: UInt64
    var length: Int
}

extension Array {
    /// The first index whose element satisfies `belongsInSecondPartition`, for an array
    /// partitioned by it (all false, then all true): a binary search.
    package func partitioningIndex(where belongsInSecondPartition: (Element) -> Bool) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if belongsInSecondPartition(self[mid]) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
