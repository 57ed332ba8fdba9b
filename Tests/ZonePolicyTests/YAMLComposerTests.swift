import Foundation
import Testing
import Yams
@testable import ZonePolicy

/// zonewall composes libyaml's events into its own nodes (`YAMLComposer`); Yams composes the same
/// events into its own. On every document both read, the trees must agree: the same shape, text,
/// tags, styles and places. Where Yams refuses a document for its syntax, so must zonewall, at the
/// same place.
@Suite("YAML composer: the same trees and syntax errors as Yams")
struct YAMLComposerTests {
    static let documents: [String] = [
        "",
        "# only a comment\n",
        "~\n",
        "zones: {}\n",
        "zones:\n  web:\n    members: [192.0.2.1, \"2001:db8::1\", '198.51.100.0/24']\n",
        "a: &a [x, y]\nb: *a\nc: {k: *a}\n",
        "a: &s text\nb: *s\nc: [*s, *s]\n",
        "tagged: !!str 100\nint: !!int 7\ncustom: !include web.yaml\nbang: ! plain\nseq: !!seq [a]\nmap: !!map {a: b}\n",
        "%TAG !e! tag:example.com,2000:\n---\nx: !e!thing v\n",
        "literal: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
        "quoted: \"a\\tb\\u00e9\"\nsingle: 'it''s'\n",
        "empty:\nnull: null\ntilde: ~\n",
        "unicode: \"ünïcödé\"\nkey ü: [α, β]\n",
        "crlf:\r\n  - a\r\n  - b\r\n",
        "cr:\r  - a\r  - b\r",
        "nel:\u{85}  - a\u{85}",
        "? complex\n: value\n? [a, b]\n: list key\n",
        "---\nexplicit: start\n...\n",
        "merge: &m {a: 1}\nother:\n  <<: *m\n  b: 2\n",
        "deep: [[[[[[[[[[x]]]]]]]]]]\n",
        "dupe: 1\ndupe: 2\n",  // Yams refuses duplicates; zonewall reads both (its reader reports them)
        // Syntax errors.
        "a: [1, 2\n",
        "a: b: c\n",
        "a:\n\t- b\n",
        "x: *undefined\n",
        "a: 1\n---\nb: 2\n",
        "a: \"unterminated\n",
        "- a\nb: c\n",
        "a: &x [*x]\n",
        "key: \u{7}bell\n",
    ]

    static let policies: [String] = {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let dirs = [here.appendingPathComponent("../../Policies"), here.appendingPathComponent("../Fuzz/Corpus/policy-loader")]
        var out: [String] = []
        for dir in dirs {
            let files = (try? FileManager.default.contentsOfDirectory(at: dir.standardizedFileURL, includingPropertiesForKeys: nil)) ?? []
            for file in files.sorted(by: { $0.path < $1.path }) {
                if let data = try? Data(contentsOf: file), let text = String(data: data, encoding: .utf8) { out.append(text) }
            }
        }
        return out
    }()

    @Test func theCorpusIsThere() {
        #expect(Self.policies.count >= 10)
    }

    @Test(arguments: documents + policies)
    func agreesWithYams(_ text: String) throws {
        let ours = Result { () throws(YAMLError) in try YAMLComposer.compose(text) }
        let theirs = Result { try Yams.Parser(yaml: text, resolver: .basic, encoding: .utf8).singleRoot() }
        switch (ours, theirs) {
        case (.success(let a), .success(let b)):
            #expect(Self.describe(a) == Self.describe(b), "\(text.debugDescription)")
        case (.success, .failure(YamlError.duplicatedKeysInMapping)):
            break  // read on by zonewall; `DuplicateKeyTests` checks what is reported
        case (.failure(.aliasKey(let mark)), _):
            // Refused by zonewall, whether or not Yams composes it: it must be an alias.
            let line = FileParser.yamlLines(text)[mark.line - 1]
            #expect(Array(line.unicodeScalars)[mark.column - 1] == "*", "\(text.debugDescription)")
        case (.failure(let a), .failure(let b)):
            #expect(Self.describe(a) == Self.describe(b), "\(text.debugDescription)")
        case (let a, let b):
            Issue.record("zonewall: \(a), Yams: \(b) for \(text.debugDescription)")
        }
    }

    /// An alias in key position is refused at the alias, without composing what it names.
    @Test func anAliasKeyIsRefusedWhereItIsWritten() {
        #expect(throws: YAMLError.aliasKey(Mark(line: 2, column: 5))) { try YAMLComposer.compose("a: &k web\nb: {*k : 1}\n") }
    }

    // MARK: - One text for a tree or an error, from either side
    //
    // The tags of mapping keys (and of everything in a key) are left out when they are YAML's
    // core tags: Yams resolves an untagged key's tag (to str, int, …) as it hashes the key to find
    // duplicates, and the reader ignores core tags on keys.

    static func keyTag(_ tag: String) -> String { tag.hasPrefix("tag:yaml.org,2002:") ? "" : tag }

    static func describe(_ node: ZonePolicy.Node?, key: Bool = false) -> String {
        guard let node else { return "none" }
        let m = node.mark
        let at = "@\(m.line):\(m.column)"
        switch node {
        case .scalar(let s):
            return "scalar(\(s.string.debugDescription) tag=\(key ? keyTag(s.tag) : s.tag) style=\(s.style))\(at)"
        case .sequence(let q):
            return "seq(tag=\(key ? keyTag(q.tag) : q.tag) [" + q.map { describe($0, key: key) }.joined(separator: ", ") + "])\(at)"
        case .mapping(let p):
            return "map(tag=\(key ? keyTag(p.tag) : p.tag) {" + p.map { "\(describe($0.key, key: true)): \(describe($0.value, key: key))" }.joined(separator: ", ") + "})\(at)"
        }
    }

    static func describe(_ node: Yams.Node?, key: Bool = false) -> String {
        guard let node else { return "none" }
        let at = node.mark.map { "@\($0.line):\($0.column)" } ?? "@?"
        switch node {
        case .scalar(let s):
            let style: ZonePolicy.Node.Scalar.Style = switch s.style {
            case .singleQuoted: .singleQuoted
            case .doubleQuoted: .doubleQuoted
            case .literal: .literal
            case .folded: .folded
            default: .plain
            }
            return "scalar(\(s.string.debugDescription) tag=\(key ? keyTag(s.tag.description) : s.tag.description) style=\(style))\(at)"
        case .sequence(let q):
            return "seq(tag=\(key ? keyTag(q.tag.description) : q.tag.description) [" + q.map { describe($0, key: key) }.joined(separator: ", ") + "])\(at)"
        case .mapping(let p):
            return "map(tag=\(key ? keyTag(p.tag.description) : p.tag.description) {" + p.map { "\(describe($0.key, key: true)): \(describe($0.value, key: key))" }.joined(separator: ", ") + "})\(at)"
        case .alias:
            return "alias\(at)"
        }
    }

    static func describe(_ e: YAMLError) -> String {
        switch e {
        case .syntax(let context, let problem, let mark): "syntax(\(context ?? "-"); \(problem))@\(mark)"
        case .reader(let problem, _): "reader(\(problem))"
        case .aliasKey(let mark): "alias key@\(mark)"
        }
    }

    static func describe(_ e: Error) -> String {
        switch e as? YamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            "syntax(\(context?.text ?? "-"); \(problem))@\(mark.line):\(mark.column)"
        case .reader(let problem, _, _, _): "reader(\(problem))"
        default: "\(e)"
        }
    }
}
