import Foundation
import Testing
@testable import ZonePolicy

/// Inputs the policy-loader fuzz target found, kept in its seed corpus: each must load to
/// diagnostics, never trap.
@Suite("Policy loader: fuzz reproducers")
struct PolicyLoaderFuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/Corpus/policy-loader").standardizedFileURL

    static func load(_ text: String) -> LoadResult {
        PolicyLoader.parse([PolicyFile(path: "fuzz.yaml", contents: text)], concurrently: false)
    }

    /// A duplicate key in a file with CR line breaks: libyaml counts CR as a line break, the
    /// search for the second occurrence split at LF only, and a mark past the last line trapped
    /// ("Range requires lowerBound <= upperBound"). Found after 355,773 executions.
    @Test func duplicateKeyAfterCRLinesIsADiagnostic() throws {
        let bytes = try Data(contentsOf: Self.corpus.appendingPathComponent("crash-duplicate-key-cr-lines.yaml"))
        let result = Self.load(String(decoding: bytes, as: UTF8.self))
        #expect(!result.errors.isEmpty)
    }

    /// The same mistake written with each line break libyaml knows: the second `db` is found on
    /// its own line, whichever break the file uses.
    @Test(arguments: ["\n", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{2029}"])
    func duplicateKeyIsLocatedWithEveryLineBreak(newline: String) {
        let text = ["zones:", "  db:", "    members: [203.0.113.5]", "  db:", "    members: [203.0.113.6]", ""].joined(separator: newline)
        let result = Self.load(text)
        let error = result.errors.first { $0.message.contains("duplicate key 'db'") }
        #expect(error?.location.line == 4, "\(result.diagnostics)")
    }

    @Test func linesAreCountedAsLibyamlCountsThem() {
        #expect(FileParser.yamlLines("a\rb\r\nc\nd\u{85}e").map(String.init) == ["a", "b", "c", "d", "e"])
        #expect(FileParser.yamlLines("").map(String.init) == [""])
        #expect(FileParser.yamlLines("x\n").map(String.init) == ["x", ""])
    }
}
