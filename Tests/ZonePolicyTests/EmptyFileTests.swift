import Testing
import ZonePolicy

/// A file with no YAML document is refused: a save that truncates first would otherwise drop
/// the file's zones for a moment, and a daemon reloading then would open what they closed.
struct EmptyFileTests {
    static let zones = PolicyFile(path: "zones.yaml", contents: "zones:\n  web: {members: [192.0.2.0/28]}\n")

    @Test(arguments: ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
    func aFileWithNoDocumentIsAnError(contents: String) {
        let r = PolicyLoader.parse([Self.zones, PolicyFile(path: "rules.yaml", contents: contents)])
        #expect(r.policy == nil)
        #expect(r.diagnostics.map(\.description).contains { $0.hasPrefix("rules.yaml:1:1: error: the file holds no YAML document") })
    }

    @Test func anExplicitEmptyMappingDeclaresNothing() {
        let r = PolicyLoader.parse([Self.zones, PolicyFile(path: "rules.yaml", contents: "# nothing yet\n{}\n")])
        #expect(r.policy?.zones.map(\.name) == ["web"])
    }
}

/// An expectation between addresses of two families describes no packet: an error, not a pass.
struct MixedFamilyExpectationTests {
    @Test func isAnError() {
        let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: """
            zones:
              a: {members: [192.0.2.0/28, 2001:db8:10::/64]}
              b: {members: [203.0.113.5, 2001:db8:20::5]}
            allow:
              - {from: a, to: b, ports: [tcp/443]}
            expect:
              - {from: "2001:db8:10::1", to: 203.0.113.5, port: tcp/443, verdict: allow}
              - {from: "::ffff:192.0.2.1", to: 203.0.113.5, port: tcp/443, verdict: deny}
              - {from: 192.0.2.1, to: 203.0.113.5, port: tcp/443, verdict: allow}

            """)])
        let errors = r.diagnostics.filter { $0.severity == .error }.map(\.description)
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0.contains("no packet does") })
        #expect(errors.contains { $0.hasPrefix("p.yaml:7:") } && errors.contains { $0.hasPrefix("p.yaml:8:") })
    }
}
