import Foundation

/// Where the cgroup v2 hierarchy is mounted, found in `/proc/self/mountinfo`.
public enum CgroupMount {
    /// The mount point of the first `cgroup2` filesystem in `mountinfo` text, or nil.
    ///
    /// Unified hosts mount it at `/sys/fs/cgroup`, hybrid hosts at `/sys/fs/cgroup/unified`;
    /// reading mountinfo instead of guessing covers both and containers with other layouts.
    public static func cgroup2(inMountinfo text: String) -> String? {
        for line in text.split(separator: "\n") {
            // Fields: id parent major:minor root mountpoint options [optional…] - fstype source super
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count, fields.count > 4 else { continue }
            guard fields[dash + 1] == "cgroup2" else { continue }
            return unescape(String(fields[4]))
        }
        return nil
    }

    /// The cgroup2 mount point of this process's mount namespace, or nil when there is none.
    public static func current() -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/self/mountinfo"),
              let text = String(data: data, encoding: .utf8) else { return nil }
        return cgroup2(inMountinfo: text)
    }

    /// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8]()
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 4 <= bytes.count,
               let v = UInt8(String(decoding: bytes[(i + 1)..<(i + 4)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
