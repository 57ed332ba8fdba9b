import Foundation
import Membership
import Testing
import ZonePolicy

func prefixes(_ texts: String...) -> [IPPrefix] { texts.map { IPPrefix.parse($0)! } }
func member(_ zone: String, _ id: String, _ addresses: String...) -> Member {
    Member(key: MemberKey(zone: zone, instance: id), addresses: addresses.map { IPPrefix.parse($0)! })
}

let policyText = """
    zones:
      web: {members: [198.51.100.0/24]}
      api: {members: [203.0.113.10]}
    allow:
      - {from: web, to: api, ports: [tcp/443]}
    """

func loadPolicy(_ text: String = policyText) throws -> Policy {
    try #require(PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: text)]).policy)
}

struct MemberValueTests {
    @Test func parsesAddressesAndPrefixes() throws {
        let r = MemberValue.parse(Array(#"{"addresses": ["198.51.100.7", "2001:db8::/64", "198.51.100.7"]}"#.utf8))
        #expect(try r.get() == prefixes("198.51.100.7", "2001:db8::/64"))
    }

    @Test func rejectsUnknownFieldsAndBadValues() throws {
        func reason(_ json: String) -> String? {
            if case .failure(let why) = MemberValue.parse(Array(json.utf8)) { return why.reason }
            return nil
        }
        #expect(reason(#"{"addresses": [], "units": ["a.service"]}"#)?.contains("unknown field(s) 'units'") == true)
        #expect(reason(#"{"addresses": ["198.51.100.300"]}"#)?.contains("'198.51.100.300' is not") == true)
        #expect(reason(#"{"addresses": ["198.51.100.1/24"]}"#)?.contains("did you mean 198.51.100.0/24") == true)
        #expect(reason(#"{"addresses": "198.51.100.1"}"#) == "'addresses' is not a list")
        #expect(reason(#"{"addresses": [7]}"#) == "'addresses' holds a non-string")
        #expect(reason(#"{}"#) == "missing field 'addresses'")
        #expect(reason(#"["198.51.100.1"]"#) == "value is not a JSON object")
        #expect(reason("not json") == "value is not JSON")
        // A field written twice (JSONSerialization would keep the last silently), escaped or not;
        // the same name inside a nested value or a string is no duplicate.
        #expect(reason(#"{"addresses":["192.0.2.61"],"addresses":["192.0.2.62"]}"#) == "field 'addresses' is written twice")
        #expect(reason(#"{"addresses":["192.0.2.61"], "addresses":["192.0.2.62"]}"#) == "field 'addresses' is written twice")
        #expect(reason(#"{"addresses":["addresses", "192.0.2.1"]}"#)?.contains("'addresses' is not") == true)
        #expect(reason(#"{"addresses":["192.0.2.61", ""addresses""]}"#)?.contains("written twice") != true)
        // etcd is not the reviewed policy: no default route, no prefix wider than /16 or /48.
        #expect(reason(#"{"addresses": ["0.0.0.0/0"]}"#)?.contains("'0.0.0.0/0' is too wide for a member") == true)
        #expect(reason(#"{"addresses": ["::/0"]}"#)?.contains("too wide") == true)
        #expect(reason(#"{"addresses": ["198.0.0.0/15"]}"#)?.contains("too wide") == true)
        #expect(reason(#"{"addresses": ["2001:db8::/47"]}"#)?.contains("too wide") == true)
        #expect(reason(#"{"addresses": ["198.51.0.0/16", "2001:db8::/48"]}"#) == nil)
        // Size bounds: a huge value is refused before it is parsed.
        let many = (0..<1025).map { "\"2001:db8::\(String($0, radix: 16))\"" }.joined(separator: ",")
        #expect(reason(#"{"addresses": ["# + many + "]}") == "'addresses' holds 1025 entries; a member holds at most 1024")
        let huge = #"{"addresses": ["198.51.100.1"], "pad": ""# + String(repeating: "x", count: 70_000) + #""}"#
        #expect(reason(huge)?.hasPrefix("value is 70") == true)
    }

    /// 1,024 addresses, all distinct, parse quickly (each one was compared with all before it).
    @Test func manyAddressesParse() throws {
        let list = (0..<1024).map { "\"2001:db8::\(String($0, radix: 16))\"" }.joined(separator: ",")
        let json = #"{"addresses": ["# + list + "]}"
        let parsed = try MemberValue.parse(Array(json.utf8)).get()
        #expect(parsed.count == 1024)
    }

    @Test func splitsKeys() throws {
        #expect(try MemberValue.key("/zw/web/i-1", prefix: "/zw/").get() == MemberKey(zone: "web", instance: "i-1"))
        for bad in ["/zw/web", "/zw/web/", "/zw/web/a/b", "/zw/Web/a", "/other/web/a"] {
            #expect(throws: MemberRejection.self) { try MemberValue.key(bad, prefix: "/zw/").get() }
        }
    }

    @Test func encodesWhatItParses() throws {
        let a = prefixes("198.51.100.7", "2001:db8::7")
        #expect(try MemberValue.parse(MemberValue.encode(a)).get() == a)
    }
}


struct MemberTableTests {
    @Test func eventsMoveTheMembers() {
        var t = MemberTable(prefix: "/zw/")
        var changed = t.apply(.resynced([member("web", "a", "198.51.100.7")], rejected: [], revision: 5))
        #expect(changed)
        #expect(t.connected && t.revision == 5)
        changed = t.apply(.added(member("web", "a", "198.51.100.7")))
        #expect(!changed, "the same value again changes nothing")
        changed = t.apply(.added(member("web", "b", "198.51.100.8")))
        #expect(changed)
        changed = t.apply(.removed(MemberKey(zone: "web", instance: "a")))
        #expect(changed)
        changed = t.apply(.removed(MemberKey(zone: "web", instance: "a")))
        #expect(!changed)
        #expect(t.sorted == [member("web", "b", "198.51.100.8")])
    }

    @Test func lostKeepsTheLastMembers() {
        var t = MemberTable(prefix: "/zw/")
        t.apply(.resynced([member("web", "a", "198.51.100.7")], rejected: [], revision: 5))
        var changed = t.apply(.lost("connection refused"))
        #expect(!changed)
        #expect(!t.connected && t.lostReason == "connection refused")
        #expect(t.sorted == [member("web", "a", "198.51.100.7")], "fail-static")
        changed = t.apply(.resynced([], rejected: [], revision: 9))
        #expect(changed, "the next list replaces everything")
        #expect(t.connected && t.members.isEmpty)
    }

    @Test func mergeAddsToTheZonesWithLongestPrefix() throws {
        var t = MemberTable(prefix: "/zw/")
        // 198.51.100.7 lies inside web's /24: as an api member it must classify into api.
        t.apply(.resynced([member("api", "i1", "198.51.100.7", "2001:db8::7"), member("web", "i2", "198.51.100.0/24")],
                          rejected: [], revision: 2))
        let (merged, rejected) = t.merged(into: try loadPolicy())
        #expect(rejected.isEmpty, "web already holds 198.51.100.0/24 from its file: silently the same")
        let e = Evaluator(merged)
        #expect(e.classify(IPPrefix.parse("198.51.100.7")!, isSource: true, hook: .forward) == .zone("api"))
        #expect(e.classify(IPPrefix.parse("198.51.100.8")!, isSource: true, hook: .forward) == .zone("web"))
        #expect(e.classify(IPPrefix.parse("2001:db8::7")!, isSource: true, hook: .forward) == .zone("api"))
        #expect(merged.zone(named: "api")!.members.last!.location.path == "etcd:/zw/api/i1")
    }

    @Test func mergeIgnoresUnknownZonesAndTakenAddresses() throws {
        var t = MemberTable(prefix: "/zw/")
        t.apply(.resynced([member("nosuch", "x", "192.0.2.1"), member("web", "y", "203.0.113.10", "192.0.2.2")],
                          rejected: [MemberRejection(key: "/zw/web/bad", reason: "value is not JSON")], revision: 2))
        let (merged, rejected) = t.merged(into: try loadPolicy())
        #expect(rejected.map(\.key) == ["/zw/nosuch/x", "/zw/web/bad", "/zw/web/y"])
        #expect(rejected[0].reason == "zone 'nosuch' is not declared in the policy")
        #expect(rejected[2].reason.contains("203.0.113.10 is already a member of zone 'api'"))
        #expect(merged.zone(named: "web")!.members.map(\.value) == prefixes("198.51.100.0/24", "192.0.2.2"), "the free address still joins")
        #expect(merged.zone(named: "api")!.members.map(\.value) == prefixes("203.0.113.10"))
    }

    @Test func cacheRoundTrips() throws {
        let path = NSTemporaryDirectory() + "zw-members-\(UUID().uuidString)/m.json"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        var t = MemberTable(prefix: "/zw/")
        t.apply(.resynced([member("web", "a", "198.51.100.7", "2001:db8::7"), member("api", "b", "203.0.113.0/28")], rejected: [], revision: 3))
        try MemberCache(path: path).write(t)
        #expect(try MemberCache(path: path).read(prefix: "/zw/") == t.sorted)
        #expect(try MemberCache(path: path).read(prefix: "/other/").isEmpty, "another prefix's cache is not used")
        #expect(try MemberCache(path: path + ".missing").read(prefix: "/zw/").isEmpty)
    }
}

/// A client whose owner never called `shutdown()` (a task that failed or was cancelled) closes
/// its connections when it goes away, instead of trapping in async-http-client's deinit.
@Test func anEtcdClientDroppedWithoutShutdownDoesNotTrap() async throws {
    do {
        let client = try EtcdClient(EtcdConfiguration(endpoints: ["127.0.0.1:9"]))
        _ = try? await client.range(prefix: "/zonewall/members/")
    }
    try await Task.sleep(for: .milliseconds(200))
}
