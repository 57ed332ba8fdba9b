import Foundation
import Testing
@testable import ZonePolicy

/// Loading a policy directory from disk, and merging files.
@Suite struct PolicyLoaderTests {
    @Test func bundledPoliciesLoadWithoutErrorsAndTheirExpectationsHold() throws {
        let result = PolicyLoader.load(directory: bundledPolicies)
        #expect(result.errors.isEmpty, "\(dump(result))")
        let policy = try #require(result.policy)
        #expect(policy.zones.map(\.name) == ["admin", "api", "cache", "db", "dns", "web", "workers"])
        #expect(policy.rules.count == 9)
        #expect(policy.settings.denied == .reject)
        #expect(policy.expectations.count == 16)
        // Rules come from rules.yaml, the file after expect.yaml.
        #expect(policy.rules.first?.location == ZonePolicy.SourceLocation(path: bundledPolicies + "/rules.yaml", line: 2, column: 5))

        let evaluator = Evaluator(policy)
        for e in policy.expectations {
            let decision = evaluator.decide(from: e.from, to: e.to, spec: e.port)
            #expect(decision.verdict == e.verdict, "\(e.location): \(e.from) → \(e.to) \(e.port): \(decision.reason)")
        }
    }

    static let zonesText = """
        zones:
          web: {members: [192.0.2.16/28, "2001:db8:10::/64"]}
          api: {members: [198.51.100.10]}
          db: {members: [203.0.113.5]}

        """
    static let webRules = """
        allow:
          - {from: world, to: web, ports: [tcp/443, tcp/80]}
          - {from: web, to: api, ports: [tcp/8000-8099]}

        """
    static let dataRules = """
        allow:
          - {from: api, to: db, ports: [tcp/5432], description: primary}
        settings:
          denied: reject

        """

    /// What a policy means, without where it was written.
    struct Meaning: Equatable {
        var zones: [String: Set<IPPrefix>]
        var rules: Set<AllowRule>
        var settings: Settings

        init(_ p: Policy) {
            let nowhere = ZonePolicy.SourceLocation(path: "", line: 0, column: 0)
            zones = Dictionary(uniqueKeysWithValues: p.zones.map { ($0.name, Set($0.members.map(\.value))) })
            rules = Set(p.rules.map { AllowRule(from: $0.from, to: $0.to, ports: $0.ports, description: $0.description, location: nowhere) })
            settings = Settings(denied: p.settings.denied, logDenied: p.settings.logDenied)
        }
    }

    @Test func fileNamesAndOrderDoNotChangeThePolicy() throws {
        let one = PolicyLoader.parse([
            PolicyFile(path: "10-zones.yaml", contents: Self.zonesText),
            PolicyFile(path: "20-web.yaml", contents: Self.webRules),
            PolicyFile(path: "30-data.yaml", contents: Self.dataRules),
        ])
        let two = PolicyLoader.parse([
            PolicyFile(path: "b.yaml", contents: Self.dataRules),
            PolicyFile(path: "z.yaml", contents: Self.zonesText),
            PolicyFile(path: "a.yaml", contents: Self.webRules),
        ])
        expectLoads(one)
        expectLoads(two)
        let p1 = try #require(one.policy), p2 = try #require(two.policy)
        #expect(Meaning(p1) == Meaning(p2))
        #expect(Meaning(p1).rules.count == 3)
        #expect(p1.zones.map(\.name) == ["api", "db", "web"])
        #expect(p2.zones.map(\.name) == ["api", "db", "web"])
        // Rules follow file-name order.
        #expect(p2.rules.map(\.location.path) == ["a.yaml", "a.yaml", "b.yaml"])

        // The same from disk, under other names.
        let dir = try TemporaryDirectory()
        try dir.write("zones.yml", Self.zonesText)
        try dir.write("00-data.yaml", Self.dataRules)
        try dir.write("web.yaml", Self.webRules)
        try dir.write("notes.txt", "not: [policy")
        try dir.write(".hidden.yaml", "not: [policy")
        let fromDisk = PolicyLoader.load(directory: dir.path)
        expectLoads(fromDisk)
        #expect(Meaning(try #require(fromDisk.policy)) == Meaning(p1))
    }

    @Test func emptyPolicyDirectoryIsAnError() throws {
        let dir = try TemporaryDirectory()
        try dir.write("README.md", "zones live in *.yaml")
        let result = PolicyLoader.load(directory: dir.path)
        let d = expectOnlyError(result, path: dir.path, line: 0, column: 0, message: "policy directory has no *.yaml or *.yml files")
        #expect(d?.description == "\(dir.path): error: policy directory has no *.yaml or *.yml files")
    }

    /// `db.YAML` is not read (names are case-sensitive), and says so: a warning next to other
    /// files, the reason for "no policy files" when it is alone. The daemon, which reports
    /// errors only, still reads the lower-case files.
    @Test func aPolicyFileNamedInUpperCaseIsNamed() throws {
        let dir = try TemporaryDirectory()
        try dir.write("web.yaml", "zones:\n  web: {members: [192.0.2.16/28]}\n")
        let upper = try dir.write("db.YAML", "zones:\n  db: {members: [192.0.2.32/28]}\n")
        try dir.write("web.yaml.bak", "zones:\n")
        let result = PolicyLoader.load(directory: dir.path)
        let policy = try #require(result.policy)
        #expect(policy.zones.map(\.name) == ["web"])
        let named = result.diagnostics.filter { $0.location.path == upper }
        #expect(named.count == 1, "\(result.diagnostics)")
        let d = try #require(named.first)
        #expect(d.severity == .warning)
        #expect(d.message == "this file is not read: policy files end in .yaml or .yml, in lower case")
        #expect(d.hint == "rename it to db.yaml to make it part of the policy")
        #expect(PolicyLoader.load(directory: dir.path, warnings: false).diagnostics.allSatisfy { $0.location.path != upper })

        let alone = try TemporaryDirectory()
        try alone.write("web.Yml", "zones:\n  web: {members: [192.0.2.16/28]}\n")
        let e = expectOnlyError(PolicyLoader.load(directory: alone.path), path: alone.path, line: 0, column: 0,
                                message: "policy directory has no *.yaml or *.yml files")
        #expect(e?.hint == "web.Yml is not read: names end in .yaml or .yml, in lower case")
    }

    @Test func missingPolicyDirectoryIsAnError() throws {
        let dir = try TemporaryDirectory()
        let missing = dir.file("nope")
        expectOnlyError(PolicyLoader.load(directory: missing), path: missing, line: 0, column: 0,
                        message: "policy directory does not exist")
        let file = try dir.write("policy.yaml", "zones:\n")
        expectOnlyError(PolicyLoader.load(directory: file), path: file, line: 0, column: 0,
                        message: "policy path is not a directory")
    }

    @Test func nonUTF8FileIsAnError() throws {
        let dir = try TemporaryDirectory()
        try dir.write("a.yaml", "zones:\n  web: {members: [192.0.2.16/28]}\n")
        let bad = try dir.write("b.yaml", Data([0x7a, 0x6f, 0x6e, 0x65, 0x73, 0x3a, 0x0a, 0x20, 0x20, 0xff, 0xfe, 0x3a, 0x0a]))
        expectOnlyError(PolicyLoader.load(directory: dir.path), path: bad, line: 0, column: 0, message: "file is not valid UTF-8")
    }

    /// A byte order mark at the start of a file (some Windows editors write one) is not part
    /// of the policy: the file reads as without it, and positions count from after it.
    @Test func aLeadingByteOrderMarkIsDropped() throws {
        let dir = try TemporaryDirectory()
        let text = "zones:\n  web: {members: [192.0.2.16/28]}\n  db: {members: [bad]}\n"
        let path = try dir.write("a.yaml", Data([0xEF, 0xBB, 0xBF]) + Data(text.utf8))
        let errors = PolicyLoader.load(directory: dir.path).diagnostics.filter { $0.severity == .error }
        let plain = try TemporaryDirectory()
        try plain.write("a.yaml", text)
        let expected = PolicyLoader.load(directory: plain.path).diagnostics.filter { $0.severity == .error }
        #expect(errors.count == 1 && expected.count == 1)
        #expect(errors.first?.location.path == path)
        #expect(errors.map { "\($0.location.line):\($0.location.column) \($0.message)" }
                == expected.map { "\($0.location.line):\($0.location.column) \($0.message)" })
        #expect(errors.first?.location.line == 3)
    }

    @Test func aDirectoryNamedLikeAPolicyFileCannotBeRead() throws {
        let dir = try TemporaryDirectory()
        try dir.write("a.yaml", "zones:\n")
        try FileManager.default.createDirectory(atPath: dir.file("x.yaml"), withIntermediateDirectories: false)
        expectOnlyError(PolicyLoader.load(directory: dir.path), path: dir.file("x.yaml"), line: 0, column: 0,
                        message: "cannot read file")
    }

    @Test(.enabled(if: getuid() != 0, "root reads a chmod 000 file anyway; the directory-as-file test covers unreadable files"))
    func unreadableFileIsAnError() throws {
        let dir = try TemporaryDirectory()
        let locked = try dir.write("locked.yaml", "zones:\n")
        #expect(chmod(locked, 0) == 0)
        expectOnlyError(PolicyLoader.load(directory: dir.path), path: locked, line: 0, column: 0,
                        message: "cannot read file (permission denied")
    }

    @Test func errorsFromEveryFileAreReportedTogether() throws {
        let dir = try TemporaryDirectory()
        let a = try dir.write("a.yaml", """
            zones:
              web: {members: [192.0.2.16/28]}
            allow:
              - {from: world, to: web, ports: [tcp/0]}

            """)
        let b = try dir.write("b.yaml", """
            zones:
              db: {members: [203.0.113.5], memebers: []}

            """)
        let c = try dir.write("c.yaml", "zones: [\n")
        let d = try dir.write("d.yaml", Data([0xc3, 0x28]))
        let e = try dir.write("e.yaml", """
            allow:
              - {from: web, to: dbb, ports: [tcp/5432]}

            """)
        let result = PolicyLoader.load(directory: dir.path)
        expectDiagnostic(result, path: a, line: 4, column: 36, message: "port 0 is out of range")
        expectDiagnostic(result, path: b, line: 2, column: 32, message: "unknown key 'memebers'", hint: "did you mean 'members'?")
        expectDiagnostic(result, path: c, line: 2, column: 1, message: "YAML syntax",
                         hint: "references to zones were not checked, because \(c) (nor \(d)) could not be read")
        expectDiagnostic(result, path: d, line: 0, column: 0, message: "file is not valid UTF-8")
        // c.yaml or d.yaml may declare 'dbb': not reported while they cannot be read.
        #expect(!result.diagnostics.contains { $0.location.path == e }, "\(dump(result))")
        #expect(result.errors.count == 4, "\(dump(result))")
        #expect(result.policy == nil)
        #expect(result.diagnostics == result.diagnostics.sortedByLocation, "reported in file and line order")
    }
}
