import Foundation
import Testing
import ZonePolicy

/// A policy from in-memory files (path → YAML); the test fails when it does not load.
func load(_ files: [String: String], sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Policy {
    let result = PolicyLoader.parse(files.map { PolicyFile(path: $0.key, contents: $0.value) })
    #expect(result.policy != nil, "policy does not load:\n\(result.diagnostics.map(\.description).joined(separator: "\n"))",
            sourceLocation: sourceLocation)
    return result.policy ?? Policy(zones: [], rules: [])
}

/// A one-file policy.
func load(_ yaml: String, path: String = "policy.yaml", sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Policy {
    load([path: yaml], sourceLocation: sourceLocation)
}

/// Zones every diff test shares: nested IPv4 prefixes (db and cache inside backend) and IPv6.
let zonesYAML = """
    zones:
      web: {members: [192.0.2.16/28, "2001:db8:10::/64"]}
      api: {members: [198.51.100.10, 198.51.100.11]}
      backend: {members: [203.0.113.0/24]}
      db: {members: [203.0.113.5, 203.0.113.6]}
      cache: {members: [203.0.113.16/29]}

    """

/// The shared zones plus `rules` (the lines of an `allow:` list).
func policy(rules: String, zones: String = zonesYAML) -> Policy {
    load(["zones.yaml": zones, "rules.yaml": "allow:\n" + rules])
}

/// The repository root.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The bundled example policy's files, by name.
func bundledPolicyFiles() throws -> [String: String] {
    let dir = repositoryRoot.appendingPathComponent("Policies")
    var out: [String: String] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".yaml") {
        out["Policies/" + name] = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
    }
    return out
}
