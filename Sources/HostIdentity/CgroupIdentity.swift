import ZonePolicy

/// A local service named by the policy: a systemd unit (name or glob) or a cgroup path.
public enum CgroupIdentity: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// A unit name or glob, matched against cgroup directory names anywhere in the hierarchy.
    case unit(String)
    /// An absolute path from the cgroup2 root, e.g. `/machine.slice/libpod-3f2a.scope`.
    case cgroup(String)

    public var description: String {
        switch self {
        case .unit(let u): "unit:\(u)"
        case .cgroup(let c): "cgroup:\(c)"
        }
    }

    /// Whether the cgroup at `path` (absolute from the cgroup2 root, "/" for the root) is this identity.
    public func matches(path: String) -> Bool {
        switch self {
        case .cgroup(let c):
            return CgroupIdentity.normalize(c) == path
        case .unit(let pattern):
            guard path != "/" else { return false }
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            return Glob.matches(pattern, name)
        }
    }

    /// `path` without a trailing slash and with repeated slashes collapsed; "/" stays "/".
    public static func normalize(_ path: String) -> String {
        "/" + path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }

    /// The depth of a normalized path: "/" is 0, "/system.slice" is 1, what `socket cgroupv2 level N` calls N.
    public static func level(of path: String) -> Int {
        path.split(separator: "/", omittingEmptySubsequences: true).count
    }
}

/// A cgroup directory that an identity resolved to.
public struct ResolvedCgroup: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Path from the cgroup2 root.
    public var path: String
    /// The directory's inode number: the cgroup id that `socket cgroupv2` compares.
    public var id: UInt64
    /// The path's depth, the N of `socket cgroupv2 level N`.
    public var level: Int

    public init(path: String, id: UInt64, level: Int) {
        self.path = path
        self.id = id
        self.level = level
    }

    public static func < (a: Self, b: Self) -> Bool { (a.path, a.id) < (b.path, b.id) }
    public var description: String { "\(path) (id \(id), level \(level))" }
}

