import Foundation
import Testing
@testable import ZonePolicy

/// The path in-memory test policies are given.
let testPath = "policy.yaml"

/// Parses one in-memory policy file.
func parse(_ yaml: String, path: String = testPath) -> LoadResult {
    PolicyLoader.parse([PolicyFile(path: path, contents: yaml)])
}

/// Every diagnostic, one per line, for failure messages.
func dump(_ result: LoadResult) -> String {
    result.diagnostics.isEmpty ? "(no diagnostics)" : result.diagnostics.map(\.description).joined(separator: "\n")
}

/// Expects exactly one diagnostic of `severity` at `path:line:column` whose message contains `message`
/// (and whose hint contains `hint`, when given). Returns it.
@discardableResult
func expectDiagnostic(
    _ result: LoadResult,
    _ severity: Diagnostic.Severity = .error,
    path: String = testPath,
    line: Int,
    column: Int,
    message: String,
    hint: String? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) -> Diagnostic? {
    let matches = result.diagnostics.filter {
        $0.severity == severity && $0.location == ZonePolicy.SourceLocation(path: path, line: line, column: column)
            && $0.message.contains(message)
    }
    #expect(matches.count == 1,
            "expected one \(severity) at \(path):\(line):\(column) containing \"\(message)\"; got:\n\(dump(result))",
            sourceLocation: sourceLocation)
    guard let d = matches.first else { return nil }
    if let hint {
        #expect(d.hint?.contains(hint) == true, "hint of \(d.location): \(d.hint ?? "nil"); wanted \"\(hint)\"",
                sourceLocation: sourceLocation)
    }
    return d
}

/// Expects the input to be refused with exactly one error, at `line:column`, naming the problem.
@discardableResult
func expectOnlyError(
    _ result: LoadResult,
    path: String = testPath,
    line: Int,
    column: Int,
    message: String,
    hint: String? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
) -> Diagnostic? {
    #expect(result.errors.count == 1, "expected exactly one error; got:\n\(dump(result))", sourceLocation: sourceLocation)
    #expect(result.policy == nil, "a policy with errors must not load", sourceLocation: sourceLocation)
    return expectDiagnostic(result, path: path, line: line, column: column, message: message, hint: hint,
                            sourceLocation: sourceLocation)
}

/// Expects the input to load: no errors, and a policy.
func expectLoads(_ result: LoadResult, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    #expect(result.errors.isEmpty, "unexpected errors:\n\(dump(result))", sourceLocation: sourceLocation)
    #expect(result.policy != nil, sourceLocation: sourceLocation)
}

/// One row of a table-driven bad-input test.
struct BadInput: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var line: Int
    var column: Int
    var message: String
    var hint: String?

    init(_ name: String, _ yaml: String, at line: Int, _ column: Int, _ message: String, hint: String? = nil) {
        self.name = name
        self.yaml = yaml
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
    }

    var testDescription: String { name }
}

/// A scratch policy directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("zonewall-policy-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        // Restore permissions so that a chmod 000 file can be removed.
        if let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
            for name in names { chmod(path + "/" + name, 0o755) }
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `text` as UTF-8 to `name`; returns the file's path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try write(name, Data(text.utf8))
    }

    @discardableResult
    func write(_ name: String, _ data: Data) throws -> String {
        let file = path + "/" + name
        try data.write(to: URL(fileURLWithPath: file))
        return file
    }

    func file(_ name: String) -> String { path + "/" + name }
}

/// The repository's `Policies` directory, found from this file's place.
let bundledPolicies: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // ZonePolicyTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()  // package root
    .appendingPathComponent("Policies").path

/// Two zones and nothing else, for tests about rules.
let webAndDB = """
    zones:
      web: {members: [192.0.2.16/28]}
      db: {members: [203.0.113.5]}

    """
