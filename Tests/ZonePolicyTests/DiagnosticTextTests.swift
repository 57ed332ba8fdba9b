import Testing
@testable import ZonePolicy

/// Text diagnostics quote user values: a control character in one must not break the
/// one-diagnostic-per-line shape (`path:line:col: error: …`, then its `note:` line).
@Suite("Diagnostics: text output escapes control characters")
struct DiagnosticTextTests {
    @Test func aNewlineInAMemberStaysOnTheDiagnosticsLine() throws {
        let result = parse("""
            zones:
              web:
                members: ["192.0.2.1\\n::error file=evil.yaml,line=1::x"]

            """)
        let d = try #require(expectOnlyError(result, line: 3, column: 15, message: "is not an IPv4 or IPv6 address"))
        let lines = d.description.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2, "one error line and one note line: \(d.description)")
        #expect(lines.first == #"policy.yaml:3:15: error: '192.0.2.1\n::error file=evil.yaml,line=1::x' is not an IPv4 or IPv6 address or prefix"#)
        #expect(lines.allSatisfy { $0.hasPrefix("policy.yaml:3:15: ") })
        // The message itself keeps the value as written, for JSON output.
        #expect(d.message.contains("192.0.2.1\n::error"))
    }

    @Test(arguments: [
        ("a\rb", #"a\rb"#), ("a\tb", #"a\tb"#), ("a\u{1B}[31mb", #"a\x1b[31mb"#), ("\u{0}", #"\x00"#),
        ("a\u{7F}", #"a\x7f"#), ("a\u{85}b", #"a\u{85}b"#), ("a\u{9B}b", #"a\u{9b}b"#), ("a\u{2028}b", #"a\u{2028}b"#),
        ("plain 'text' é ✓", "plain 'text' é ✓"),
    ])
    func controlCharactersAreEscaped(_ raw: String, _ shown: String) {
        #expect(Diagnostic.escaped(raw) == shown)
        let d = Diagnostic.error(SourceLocation(path: "p\nq.yaml", line: 1, column: 2), "bad '\(raw)'", hint: "not '\(raw)'")
        #expect(d.description == "p\\nq.yaml:1:2: error: bad '\(shown)'\np\\nq.yaml:1:2: note: not '\(shown)'")
    }
}
