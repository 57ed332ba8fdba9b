/// A least-privilege lint that `zonewall check` reports as a warning, silenced per rule or zone
/// with `lint: {ignore: [KIND], reason: "…"}`.
public enum LintKind: String, Hashable, Sendable, CaseIterable, Comparable {
    /// A rule from `world` admits `any`, or a whole protocol.
    case worldOpen = "world-open"
    /// A rule between two zones opens more than 1,024 ports of one protocol.
    case widePorts = "wide-ports"
    /// A zone has no members (nor identities).
    case emptyZone = "empty-zone"
    /// No allow rule mentions a zone.
    case unusedZone = "unused-zone"
    /// A rule's `from` or `to` names every zone.
    case everyZone = "every-zone"
    /// Another rule already admits everything a rule admits.
    case covered
    /// SSH to this host is denied from the zones operators may connect from (silenced per zone:
    /// a zone no operator connects from).
    case lockout

    /// Words for the kind, used in the schema and the README.
    public var summary: String {
        switch self {
        case .worldOpen: "a rule from world admits any, or a whole protocol"
        case .widePorts: "a rule between zones opens more than 1,024 ports of one protocol"
        case .emptyZone: "a zone has no members or identities"
        case .unusedZone: "no allow rule mentions a zone"
        case .everyZone: "a rule's from or to names every zone"
        case .covered: "another rule already admits everything the rule admits"
        case .lockout: "tcp/22 to this host is denied from a zone operators may connect from"
        }
    }

    /// The hint's tail that says how to silence this lint where it is reported.
    public var silenceHint: String { "silence with lint: {ignore: [\(rawValue)], reason: \"…\"}" }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A `lint:` entry: the lints silenced on one rule or zone, and why.
public struct LintIgnore: Hashable, Sendable {
    public var kinds: Set<LintKind>
    public var reason: String

    public init(kinds: Set<LintKind>, reason: String) {
        self.kinds = kinds
        self.reason = reason
    }
}
