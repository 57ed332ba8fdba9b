import Foundation
import Testing
@testable import PolicyReview
@testable import ZonePolicy

/// The schema is the one committed, and every key in it says what it is.
@Suite struct SchemaTests {
    static let committed = repositoryRoot.appendingPathComponent("packaging/schema/zonewall-policy.schema.json")

    @Test func committedFileEqualsZonewallSchema() throws {
        if ProcessInfo.processInfo.environment["ZONEWALL_UPDATE_GOLDEN"] == "1" {
            try PolicySchema.text.write(to: Self.committed, atomically: true, encoding: .utf8)
        }
        let file = try String(contentsOf: Self.committed, encoding: .utf8)
        #expect(file == PolicySchema.text, "packaging/schema/zonewall-policy.schema.json is stale; rerun with ZONEWALL_UPDATE_GOLDEN=1")
    }

    @Test func isValidJSONOfDraft2020() throws {
        let object = try JSONSerialization.jsonObject(with: Data(PolicySchema.text.utf8)) as? [String: Any]
        #expect(object?["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
    }

    /// Walks every `properties` map and every `$defs` entry: each needs a description, and each
    /// object schema must close itself with `additionalProperties: false` (strict).
    @Test func everyKeyIsDescribedAndEveryMappingIsClosed() {
        var undescribed: [String] = [], open: [String] = []
        func walk(_ v: JSONValue, _ path: String) {
            switch v {
            case .object(let o):
                if case .object(let props)? = o["properties"] {
                    if o["additionalProperties"] != .bool(false) { open.append(path) }
                    for (k, s) in props {
                        if case .object(let so) = s, so["description"] == nil { undescribed.append("\(path).\(k)") }
                    }
                }
                if case .object(let defs)? = o["$defs"] {
                    for (k, s) in defs { if case .object(let so) = s, so["description"] == nil { undescribed.append("$defs.\(k)") } }
                }
                for (k, s) in o { walk(s, "\(path)/\(k)") }
            case .array(let items): for (i, s) in items.enumerated() { walk(s, "\(path)[\(i)]") }
            default: break
            }
        }
        walk(PolicySchema.document, "#")
        #expect(undescribed.isEmpty, "\(undescribed)")
        #expect(open.isEmpty, "\(open)")
    }

    /// A key the loader accepts and the schema lacks would make editors flag a valid policy; a key
    /// the schema has and the loader refuses would let CI pass what `check` rejects.
    @Test func keysMatchWhatTheLoaderAccepts() {
        let names = { (keys: [PolicySchema.Key]) in Set(keys.map(\.name)) }
        #expect(names(PolicySchema.topKeys) == FileParser.topKeys)
        #expect(names(PolicySchema.zoneKeys) == FileParser.zoneKeys)
        #expect(names(PolicySchema.ruleKeys) == FileParser.ruleKeys)
        #expect(names(PolicySchema.settingsKeys) == FileParser.settingsKeys)
        #expect(names(PolicySchema.expectKeys) == FileParser.expectKeys)
        #expect(names(PolicySchema.lintKeys) == FileParser.lintKeys)
    }

    /// Whether `value` is a string `$defs/party` accepts: one of its `anyOf` patterns matches.
    /// (ECMA-262 and ICU agree on these patterns: classes, anchors and counted repeats only.)
    static func partyAccepts(_ value: String) throws -> Bool {
        guard case .object(let top) = PolicySchema.document, case .object(let defs)? = top["$defs"],
              case .object(let party)? = defs["party"], case .array(let options)? = party["anyOf"] else {
            throw SchemaTestError("no $defs/party anyOf")
        }
        for case .object(let o) in options {
            guard case .string(let pattern)? = o["pattern"] else { continue }
            let re = try NSRegularExpression(pattern: pattern)
            if re.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) != nil { return true }
        }
        return false
    }

    /// The documented expectation endpoints `unit:NAME`, `cgroup:/PATH`, `user:NAME|UID` and
    /// `iface:NAME` are valid parties; a policy file using them loads and its every endpoint passes.
    @Test func identityEndpointsOfExpectationsAreParties() throws {
        let fixture = repositoryRoot.appendingPathComponent("Tests/PolicyReviewTests/Fixtures/good/identities.yaml")
        let text = try String(contentsOf: fixture, encoding: .utf8)
        let loaded = PolicyLoader.parse([PolicyFile(path: "identities.yaml", contents: text)])
        #expect(loaded.errors.isEmpty, "\(loaded.diagnostics)")
        let expectations = try #require(loaded.policy?.expectations)
        #expect(expectations.count == 6)
        for e in expectations {
            for party in [e.from, e.to] { #expect(try Self.partyAccepts(party.description), "\(party)") }
        }
        for good in ["web", "world", "host", "192.0.2.1", "2001:db8::1", "unit:billing.service", "cgroup:/system.slice/x.service",
                     "user:billing", "user:1001", "iface:veth0", "iface:eth0.100"] {
            #expect(try Self.partyAccepts(good), "\(good)")
        }
        for bad in ["unit:", "unit:billing-*.service", "cgroup:relative/path", "cgroup:/", "user:", "user:a b",
                    "iface:veth*", "iface:much-too-long-name0", "iface:a/b", "host:x", "192.0.2.0/24", "Web"] {
            #expect(try !Self.partyAccepts(bad), "\(bad)")
        }
    }
}

extension SchemaTests {
    /// The schema's interface pattern takes what `check` takes, and refuses what it refuses: a
    /// name of 1 to 15 bytes, no '/', ':' or space, an optional trailing `*`.
    @Test func interfacePatternAgreesWithCheck() throws {
        let keys = PolicySchema.zoneKeys.first { $0.name == "interfaces" }
        guard case .object(let schema)? = keys?.schema, case .object(let items)? = schema["items"],
              case .string(let pattern)? = items["pattern"] else {
            throw SchemaTestError("no pattern for a zone's interfaces")
        }
        let re = try NSRegularExpression(pattern: pattern)
        for name in ["eth0", "veth*", "abcdefghijklmno", "abcdefghijklmno*", "abcdefghijklmnop", "abcdefghijklmnop*", "*", "",
                     "a/b", "a:b", "a b", "ve*th", "eth0.100", "br-1*"] {
            let schemaTakes = re.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
            let checkTakes = IdentityNames.interfaceProblem(name) == nil
            #expect(schemaTakes == checkTakes, "\(name): schema \(schemaTakes), check \(checkTakes)")
        }
    }
}

struct SchemaTestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
