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
