import ZonePolicy

/// Names one registered instance: the zone it joins and its id (`<prefix><zone>/<instance>` in etcd).
public struct MemberKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var zone: String
    public var instance: String

    public init(zone: String, instance: String) {
        self.zone = zone
        self.instance = instance
    }

    public var description: String { "\(zone)/\(instance)" }

    public static func < (a: MemberKey, b: MemberKey) -> Bool { (a.zone, a.instance) < (b.zone, b.instance) }
}

/// One registered instance and the addresses it brings into its zone.
public struct Member: Hashable, Sendable {
    public var key: MemberKey
    public var addresses: [IPPrefix]

    public init(key: MemberKey, addresses: [IPPrefix]) {
        self.key = key
        self.addresses = addresses
    }
}

/// A key that is ignored: a malformed value, a key outside the `<zone>/<instance>` shape, a zone
/// the policy does not declare, or an address another zone already holds.
public struct MemberRejection: Error, Hashable, Sendable, CustomStringConvertible {
    /// The full key as stored (etcd key text).
    public var key: String
    public var reason: String

    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "\(key): \(reason)" }
}

/// What a member source reports. Typed: never raw keys or bytes.
public enum MemberEvent: Hashable, Sendable {
    /// An instance registered, or changed its addresses.
    case added(Member)
    /// An instance went away: deleted, its lease expired, or its key now holds an invalid value.
    case removed(MemberKey)
    /// The complete set after a (re)list: replaces everything known before.
    case resynced([Member], rejected: [MemberRejection], revision: Int64)
    /// A key that is ignored (its previous member, if any, is removed by a `.removed` before it).
    case rejected(MemberRejection)
    /// A key of another shape than `<prefix><zone>/<instance>` was deleted: it is no longer
    /// ignored. (A deleted key of the member shape is a `.removed`, whatever its value was.)
    case cleared(String)
    /// The source has seen every change up to this revision (a watch's current revision).
    case progressed(Int64)
    /// The source is unreachable: the last known members stay in force (fail-static) until the next `.resynced`.
    case lost(String)
}

/// A stream of zone members from an outside source of truth (etcd, or a fake in tests).
public protocol MemberSource: Sendable {
    /// The events, from a first `.resynced` (or `.lost`) on; ends when the source is shut down.
    func events() -> AsyncStream<MemberEvent>
}
