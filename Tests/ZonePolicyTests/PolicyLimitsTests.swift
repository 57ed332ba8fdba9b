import Foundation
import Testing
@testable import ZonePolicy

/// Each limit on policy input refuses with a diagnostic at the first thing past it.
@Suite struct PolicyLimitsTests {
    func limits(_ change: (inout PolicyLimits) -> Void) -> PolicyLimits {
        var l = PolicyLimits()
        change(&l)
        return l
    }

    func parse(_ yaml: String, _ limits: PolicyLimits) -> LoadResult {
        PolicyLoader.parse([PolicyFile(path: testPath, contents: yaml)], limits: limits)
    }

    @Test func zonesPastTheLimitAreRefusedAtTheFirstOneOver() {
        let yaml = "zones:\n  a: {members: [192.0.2.1]}\n  b: {members: [192.0.2.2]}\n  c: {members: [192.0.2.3]}\n"
        #expect(parse(yaml, limits { $0.zones = 3 }).policy != nil)
        let result = parse(yaml, limits { $0.zones = 2 })
        #expect(result.policy == nil)
        expectOnlyError(result, line: 4, column: 3, message: "zone 'c' is past the limit of 2 zones in a policy")
    }

    @Test func membersPastTheLimitAreRefusedAtTheFirstOneOver() {
        let yaml = "zones:\n  a: {members: [192.0.2.1, 192.0.2.2]}\n  b:\n    members:\n      - 192.0.2.3\n      - 192.0.2.4\n"
        #expect(parse(yaml, limits { $0.members = 4 }).policy != nil)
        expectOnlyError(parse(yaml, limits { $0.members = 3 }), line: 6, column: 9,
                        message: "member 192.0.2.4 of zone 'b' is past the limit of 3 members in a policy")
    }

    @Test func rulesAndPortsPastTheLimits() {
        let yaml = """
            zones: {a: {members: [192.0.2.1]}, b: {members: [192.0.2.2]}}
            allow:
              - {from: a, to: b, ports: [tcp/1, tcp/2, tcp/3]}
              - {from: b, to: a, ports: [tcp/4]}

            """
        #expect(parse(yaml, limits { $0.rules = 2; $0.portsPerRule = 3 }).policy != nil)
        expectOnlyError(parse(yaml, limits { $0.rules = 1 }), line: 4, column: 5, message: "allow rule past the limit of 1 rules")
        expectOnlyError(parse(yaml, limits { $0.portsPerRule = 2 }), line: 3, column: 5,
                        message: "allow rule lists 3 ports, more than the limit of 2")
    }

    @Test func nestingDeeperThanTheLimitIsRefusedWhereItGoesTooDeep() {
        let deep = "zones: " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "\n"
        let result = parse(deep, .standard)
        #expect(result.policy == nil)
        expectOnlyError(result, line: 1, column: 39, message: "collections nested more than 32 deep, the limit")
        // libyaml's own limit (1000) stops what would exhaust the stack, with a syntax error.
        let hostile = String(repeating: "[", count: 100_000)
        let refused = parse(hostile, .standard)
        #expect(refused.errors.count == 1)
        #expect(refused.errors.first?.message.contains("Maximum nesting level") == true, "\(dump(refused))")
    }

    @Test func theBenchmarkScalePolicyIsWithinTheLimits() {
        let l = PolicyLimits.standard
        #expect(l.zones >= 10 * 10_000 && l.members >= 10 * 100_000 && l.rules >= 10 * 20_000)
        #expect(l.totalBytes >= 10 * 4_117_134 && l.bytesPerFile >= 10 * 619_035)
    }

    func directory(_ files: [String: String]) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-limits-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: false, encoding: .utf8) }
        return dir
    }

    @Test func fileCountBytesPerFileAndTotalBytes() throws {
        let a = "zones: {a: {members: [192.0.2.1]}}\n"  // 35 bytes
        let dir = try directory(["a.yaml": a, "b.yaml": "zones: {b: {members: [192.0.2.2]}}\n", "c.yaml": "# c\n{}\n"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(PolicyLoader.load(directory: dir).policy != nil)

        let files = PolicyLoader.load(directory: dir, limits: limits { $0.files = 2 })
        #expect(files.errors.map(\.text) == ["\(dir): policy directory has 3 policy files, more than the limit of 2"])

        let perFile = PolicyLoader.load(directory: dir, limits: limits { $0.bytesPerFile = 34 })
        #expect(perFile.errors.map(\.text) == [
            "\(dir)/a.yaml: file is larger than the limit of 34 bytes per policy file",
            "\(dir)/b.yaml: file is larger than the limit of 34 bytes per policy file",
        ])

        let total = PolicyLoader.load(directory: dir, limits: limits { $0.totalBytes = 60 })
        #expect(total.errors.map(\.text) == [
            "\(dir)/b.yaml: policy files add up to more than the limit of 60 bytes with this one",
        ])
    }
}

extension Diagnostic {
    /// `path: message`, without the hint.
    var text: String { "\(location.path): \(message)" }
}
