import Foundation
import Testing
@testable import ZonePolicy

/// A file that could not be read may declare the zones other files name: the loader does not
/// report those names as unknown, and says once why they were not checked.
@Suite("Unread files: references to zones are not checked")
struct UnreadFileTests {
    static let broken = "zones:\n  web: {members: [192.0.2.16/28]\n  db: {members: [203.0.113.5]}\n"
    static let rules = "allow:\n  - {from: web, to: db, ports: [tcp/5432]}\n  - {from: world, to: web, ports: [tcp/443]}\n"
    static let expectations = "expect:\n  - {from: web, to: db, port: tcp/5432, verdict: allow}\n"

    @Test func aSyntaxErrorDoesNotMakeOtherFilesZonesUnknown() throws {
        let result = PolicyLoader.parse([PolicyFile(path: "a.yaml", contents: Self.broken),
                                         PolicyFile(path: "b.yaml", contents: Self.rules),
                                         PolicyFile(path: "c.yaml", contents: Self.expectations)])
        #expect(result.errors.count == 1, "only the syntax error: \(dump(result))")
        let d = try #require(result.errors.first)
        #expect(d.location.path == "a.yaml" && d.message.hasPrefix("YAML syntax"), "\(dump(result))")
        #expect(d.hint == "references to zones were not checked, because a.yaml could not be read")
        #expect(result.policy == nil)
    }

    @Test func everyUnreadFileIsNamedInTheOneNote() throws {
        let result = PolicyLoader.parse([PolicyFile(path: "a.yaml", contents: Self.broken),
                                         PolicyFile(path: "b.yaml", contents: Self.rules),
                                         PolicyFile(path: "c.yaml", contents: "")])
        #expect(result.errors.count == 2, "\(dump(result))")
        #expect(result.diagnostics.filter { $0.hint?.contains("were not checked") == true }.count == 1, "\(dump(result))")
        #expect(result.errors.first?.hint == "references to zones were not checked, because a.yaml (nor c.yaml) could not be read")
    }

    /// A file that is not UTF-8 is not read either: the rules in it may mention any zone, so no
    /// "no allow rule mentions zone" guess is made about the zones of the files that were read.
    @Test func aFileNotReadMakesNoUnusedZoneGuesses() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-unread-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("zones: {web: {members: [192.0.2.0/24], description: \"caf".utf8 + [0xE9] + "\"}}\n".utf8)
            .write(to: dir.appendingPathComponent("a.yaml"))
        try "zones: {api: {members: [198.51.100.0/24]}}\nallow:\n  - {from: web, to: api, ports: [tcp/443]}\n"
            .write(to: dir.appendingPathComponent("b.yaml"), atomically: true, encoding: .utf8)
        let result = PolicyLoader.load(directory: dir.path)
        #expect(result.errors.count == 1 && result.errors[0].message.contains("not valid UTF-8"), "\(dump(result))")
        #expect(!result.diagnostics.contains { $0.severity == .warning }, "\(dump(result))")
    }

    /// An unknown zone is still an error when every file was read, even with other errors.
    @Test func withEveryFileReadUnknownZonesAreReported() {
        let result = PolicyLoader.parse([PolicyFile(path: "a.yaml", contents: "zones:\n  web: {members: [192.0.2.1/24]}\n"),
                                         PolicyFile(path: "b.yaml", contents: Self.rules)])
        expectDiagnostic(result, path: "b.yaml", line: 2, column: 21, message: "unknown zone 'db'")
        #expect(result.errors.allSatisfy { $0.hint?.contains("not checked") != true })
    }

    @Test func aFileThatIsNotUTF8IsNotReadEither() throws {
        let dir = try TemporaryDirectory()
        try dir.write("a.yaml", Data([0x7A, 0x6F, 0x6E, 0x65, 0x73, 0x3A, 0xFF, 0x0A]))
        try dir.write("b.yaml", Self.rules)
        let result = PolicyLoader.load(directory: dir.path)
        #expect(result.errors.count == 1, "\(dump(result))")
        #expect(result.errors.first?.message == "file is not valid UTF-8")
        #expect(result.errors.first?.hint == "references to zones were not checked, because \(dir.file("a.yaml")) could not be read")
    }
}
