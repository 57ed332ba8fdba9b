import Foundation
import ZonePolicy

/// The last known members, kept on disk so that a daemon restarted while etcd is down starts
/// with them (fail-static across restarts). Written atomically.
public struct MemberCache: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    struct File: Codable {
        var prefix: String
        var revision: Int64?
        var members: [String: [String]]
    }

    /// Writes the members (keys relative to the prefix, `zone/instance`).
    public func write(_ table: MemberTable) throws {
        var members: [String: [String]] = [:]
        for (k, a) in table.members { members[k.description] = a.map(\.description) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try PrivateFile.write(try encoder.encode(File(prefix: table.prefix, revision: table.revision, members: members)), to: path)
    }

    /// The members last written, whatever their prefix, as a table; nil when there is no file.
    public func readTable() throws -> MemberTable? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        return MemberTable(prefix: file.prefix, members: try read(prefix: file.prefix))
    }

    /// The members last written for `prefix`; empty when there is no file or it is for another prefix.
    public func read(prefix: String) throws -> [Member] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        guard file.prefix == prefix else { return [] }
        return file.members.keys.sorted().compactMap { name in
            guard case .success(let key) = MemberValue.key(prefix + name, prefix: prefix) else { return nil }
            return Member(key: key, addresses: file.members[name]!.compactMap(IPPrefix.parse))
        }
    }
}
