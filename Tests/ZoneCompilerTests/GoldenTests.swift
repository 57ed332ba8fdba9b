import Foundation
import Ruleset
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// Policy → rule set, compared with checked-in nft text. Set ZONEWALL_UPDATE_GOLDEN=1 to rewrite it.
struct GoldenTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let policiesDirectory = root.appendingPathComponent("Policies").path
    static let goldenFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/Policies.nft")

    @Test func bundledPoliciesMatchGolden() throws {
        let policy = try #require(PolicyLoader.load(directory: Self.policiesDirectory).policy)
        let text = NftText.replaceScript(ZoneCompiler.compile(policy))
        if ProcessInfo.processInfo.environment["ZONEWALL_UPDATE_GOLDEN"] == "1" {
            try text.write(to: Self.goldenFile, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOf: Self.goldenFile, encoding: .utf8)
        #expect(text == golden, "plan output differs from Golden/Policies.nft; if intended, rerun with ZONEWALL_UPDATE_GOLDEN=1")
    }

    @Test func compilationIsDeterministicAndOrderIndependent() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.policiesDirectory).sorted().map {
            PolicyFile(path: $0, contents: try String(contentsOfFile: Self.policiesDirectory + "/" + $0, encoding: .utf8))
        }
        let a = try #require(PolicyLoader.parse(files).policy)
        let b = try #require(PolicyLoader.parse(files.reversed()).policy)
        let textA = NftText.replaceScript(ZoneCompiler.compile(a))
        #expect(textA == NftText.replaceScript(ZoneCompiler.compile(b)))
        #expect(textA == NftText.replaceScript(ZoneCompiler.compile(a)))
        // Renaming files reorders rules but must not change what is enforced.
        let renamed = files.enumerated().map { PolicyFile(path: "\(9 - $0.offset)-\($0.element.path)", contents: $0.element.contents) }
        let c = try #require(PolicyLoader.parse(renamed).policy)
        let tc = ZoneCompiler.compile(c), ta = ZoneCompiler.compile(a)
        #expect(tc.skeleton == ta.skeleton)
        #expect(tc.sets == ta.sets)
    }

    @Test func noChainGrowsWithZonesOrRules() {
        let small = ZoneCompiler.compile(RandomPolicy.make(seed: 3, zones: 4, rules: 4))
        let large = ZoneCompiler.compile(RandomPolicy.make(seed: 3, zones: 60, rules: 200))
        let longest = { (t: Table) in t.chains.map(\.rules.count).max() ?? 0 }
        #expect(longest(large) == longest(small))
        #expect(large.chains.filter { $0.base != nil }.map(\.rules.count) == small.chains.filter { $0.base != nil }.map(\.rules.count))
    }

    @Test func membershipEditIsElementsOnly() throws {
        let policy = try #require(PolicyLoader.load(directory: Self.policiesDirectory).policy)
        var edited = policy
        let i = try #require(edited.zones.firstIndex { $0.name == "api" })
        edited.zones[i].members.append(Located(IPPrefix.parse("198.51.100.12")!, at: edited.zones[i].location))
        let before = ZoneCompiler.compile(policy), after = ZoneCompiler.compile(edited)
        let tx = Transaction.diff(from: before, to: after)
        #expect(!tx.replacesTable)
        #expect(tx.changes.allSatisfy { if case .addElements = $0 { true } else if case .deleteElements = $0 { true } else { false } })
        #expect(tx.elementChanges > 0)
        #expect(Transaction.diff(from: after, to: after).isEmpty)
    }
}
