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

    /// Format characters that reorder or hide text are shown as escapes: a zone named
    /// "admin\u{202E}txt.exe" must not print as "adminexe.txt".
    @Test(arguments: [
        ("a\u{202A}b", #"a\u{202a}b"#), ("a\u{202B}b", #"a\u{202b}b"#), ("a\u{202C}b", #"a\u{202c}b"#),
        ("a\u{202D}b", #"a\u{202d}b"#), ("admin\u{202E}txt.exe", #"admin\u{202e}txt.exe"#),
        ("a\u{2066}b", #"a\u{2066}b"#), ("a\u{2067}b", #"a\u{2067}b"#), ("a\u{2068}b", #"a\u{2068}b"#), ("a\u{2069}b", #"a\u{2069}b"#),
        ("a\u{200E}b", #"a\u{200e}b"#), ("a\u{200F}b", #"a\u{200f}b"#),
        ("a\u{200B}b", #"a\u{200b}b"#), ("a\u{200C}b", #"a\u{200c}b"#), ("a\u{200D}b", #"a\u{200d}b"#),
        ("a\u{2060}b", #"a\u{2060}b"#), ("\u{FEFF}web", #"\u{feff}web"#),
        // Neighbours that are ordinary text stay as they are.
        ("a\u{2010}b\u{2030}c\u{2065}", "a\u{2010}b\u{2030}c\u{2065}"),
    ])
    func formatCharactersThatReorderOrHideTextAreEscaped(_ raw: String, _ shown: String) {
        #expect(Diagnostic.escaped(raw) == shown)
        let d = Diagnostic.error(SourceLocation(path: "p\u{202E}.yaml", line: 1, column: 2), "bad '\(raw)'", hint: "not '\(raw)'")
        #expect(d.description == "p\\u{202e}.yaml:1:2: error: bad '\(shown)'\np\\u{202e}.yaml:1:2: note: not '\(shown)'")
    }

    /// `check --format github`: GitHub unescapes only %25, %0D and %0A (and %3A, %2C in properties);
    /// every other control or format character is percent-encoded, so no raw ESC or BEL reaches
    /// the log and a value cannot end the annotation early.
    @Test(arguments: [
        ("a\u{1B}[31mb", "a%1B[31mb"), ("bell\u{07}", "bell%07"), ("a\tb", "a%09b"), ("\u{0}", "%00"), ("a\u{7F}", "a%7F"),
        ("a\u{9B}b", "a%C2%9Bb"), ("admin\u{202E}txt", "admin%E2%80%AEtxt"), ("\u{FEFF}x", "%EF%BB%BFx"),
        ("a\nb\rc", "a%0Ab%0Dc"), ("100%", "100%25"), ("a:b,c", "a:b,c"), ("plain 'text' é ✓", "plain 'text' é ✓"),
    ])
    func githubAnnotationsPercentEncodeControlCharacters(_ raw: String, _ shown: String) {
        #expect(Diagnostic.githubData(raw) == shown)
        let d = Diagnostic.error(SourceLocation(path: "p.yaml", line: 3, column: 4), "bad '\(raw)'", hint: "not '\(raw)'")
        #expect(d.githubAnnotation == "::error file=p.yaml,line=3,col=4::bad '\(shown)' (not '\(shown)')")
        #expect(!d.githubAnnotation.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
    }

    @Test func githubPropertiesAlsoEncodeColonAndComma() {
        #expect(Diagnostic.githubProperty("a:b,c%\u{1B}\u{07}\n") == "a%3Ab%2Cc%25%1B%07%0A")
        let d = Diagnostic.warning(SourceLocation(path: "dir\u{1B}]0;x\u{07}/p,q.yaml", line: 0, column: 0), "whole file")
        #expect(d.githubAnnotation == "::warning file=dir%1B]0;x%07/p%2Cq.yaml::whole file")
    }
}
