/// Looks a user name up in the host's user database: the executable passes getpwnam's answer,
/// tests a table. Nil when the name is unknown.
public typealias UserLookup = @Sendable (String) -> UInt32?

/// Users as the kernel sees them: by uid (`meta skuid`). Where `root` is uid 0, `users: [root]`
/// in one zone and `users: [0]` in another name one user twice, and the kernel can send its
/// packets to only one of the two zones; `explain` would answer for the other.
enum UserIdentities {
    /// The uid each user name of the policy resolves to, and an error for each user that is
    /// the same uid as a differently written user of another zone (the same spelling twice is
    /// `PolicyResolver.checkIdentities`' to report).
    static func resolve(_ policy: Policy, lookup: UserLookup?) -> (ids: [String: UInt32], diagnostics: [Diagnostic]) {
        var ids: [String: UInt32] = [:]
        var first: [UInt32: (zone: String, written: String, location: SourceLocation)] = [:]
        var diagnostics: [Diagnostic] = []
        for zone in policy.zones.sorted(by: { $0.location < $1.location }) {
            for user in zone.users {
                let numeric = UInt32(user.value)
                guard let uid = numeric ?? lookup?(user.value) else { continue }
                if numeric == nil { ids[user.value] = uid }
                guard let owner = first[uid] else {
                    first[uid] = (zone.name, user.value, user.location)
                    continue
                }
                guard owner.written != user.value else { continue }
                let same = "user '\(user.value)' is uid \(uid)\(numeric == nil ? " on this host" : ""), as is user '\(owner.written)'"
                if owner.zone == zone.name {
                    diagnostics.append(.warning(user.location, "\(same): listed twice in zone '\(zone.name)'",
                                                hint: "first listed at \(owner.location)"))
                } else {
                    diagnostics.append(.error(user.location, "\(same) of zone '\(owner.zone)': one user in two zones, '\(owner.zone)' and '\(zone.name)'",
                                              hint: "it is also listed at \(owner.location); a user belongs to one zone (the kernel sees uids, not names)"))
                }
            }
        }
        return (ids, diagnostics)
    }
}
