import Ruleset
import TestSupport
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// `ZoneCompiler.compile(_:after:)` must give exactly the table a whole compile gives.
struct IncrementalCompileTests {
    /// Random member edits on random policies (nested and adjacent prefixes of both families,
    /// world and host rules, audit zones), applied one after another: after each edit the
    /// incremental compile equals a whole compile of the edited policy.
    @Test(arguments: 0..<40)
    func randomMemberEditsGiveTheWholeCompile(seed: UInt64) {
        var g = SplitMix64(seed: 0x1_4000 + seed)
        var policy = RandomPolicy.make(seed: seed, zones: Int.random(in: 3...14, using: &g), rules: Int.random(in: 2...20, using: &g))
        for i in policy.zones.indices where Int.random(in: 0..<5, using: &g) == 0 { policy.zones[i].audit = true }
        var compiled = ZoneCompiler.compile(policy, after: nil)
        #expect(compiled.kind == .whole)
        var incremental = 0
        for step in 0..<25 {
            var edited = policy
            Self.editMembers(&edited, &g)
            let next = ZoneCompiler.compile(edited, after: compiled)
            let whole = ZoneCompiler.compile(edited)
            if next.table != whole {
                let message: String = "seed \(seed) step \(step): incremental compile differs from the whole compile\n"
                    + "incremental:\n\(NftText.replaceScript(next.table))\nwhole:\n\(NftText.replaceScript(whole))"
                Issue.record(Comment(rawValue: message))
                return
            }
            if case .incremental = next.kind { incremental += 1 }
            policy = edited
            compiled = next
        }
        #expect(incremental == 25, "every member edit is compiled incrementally")
    }

    /// Anything but members (a rule, a setting, a new zone) is compiled whole, and equally right.
    @Test func otherEditsAreCompiledWhole() {
        let policy = RandomPolicy.make(seed: 7, zones: 8, rules: 12)
        let compiled = ZoneCompiler.compile(policy, after: nil)
        var ruleEdit = policy
        ruleEdit.rules[0].ports = [.any]
        var settingEdit = policy
        settingEdit.settings.logDenied.toggle()
        var zoneEdit = policy
        zoneEdit.zones.append(Zone(name: "zz", members: [Located(IPPrefix.parse("192.0.2.99")!, at: policy.zones[0].location)], location: policy.zones[0].location))
        var moved = policy
        moved.rules[0].location = SourceLocation(path: "other.yaml", line: 40, column: 3)
        for edited in [ruleEdit, settingEdit, zoneEdit] {
            let next = ZoneCompiler.compile(edited, after: compiled)
            #expect(next.kind == .whole)
            #expect(next.table == ZoneCompiler.compile(edited))
        }
        // A rule that only moved in its file changes nothing the compiler reads.
        #expect(ZoneCompiler.compile(moved, after: compiled).kind == .incremental(zones: 0, lookups: 0))
    }

    /// One member added to one zone rebuilds that zone's lookup and those pointing at it, not all.
    @Test func aMemberEditRebuildsOnlyWhatReadsIt() {
        let loc = SourceLocation(path: "z.yaml", line: 1, column: 1)
        var zones: [Zone] = []
        for i in 0..<50 {
            zones.append(Zone(name: String(format: "z%02d", i), members: [Located(IPPrefix(family: .ipv4, address: 0xC633_6400 | UInt128(i), length: 32), at: loc)], location: loc))
        }
        // A chain of rules: z00 → z01 → … → z49.
        let rules = (0..<49).map { i in
            AllowRule(from: [.zone(zones[i].name)], to: [.zone(zones[i + 1].name)], ports: [.ports(.tcp, 443...443)], location: loc)
        }
        let policy = Policy(zones: zones, rules: rules)
        let compiled = ZoneCompiler.compile(policy, after: nil)
        var edited = policy
        edited.zones[20].members.append(Located(IPPrefix.parse("198.51.100.200")!, at: loc))
        let next = ZoneCompiler.compile(edited, after: compiled)
        #expect(next.kind == .incremental(zones: 1, lookups: 2), "z20's own lookup and z19's, which points at z20")
        #expect(next.table == ZoneCompiler.compile(edited))
    }

    /// Adds, removes or moves members of one to three zones; sometimes a zone's last member of
    /// a family goes, or its first comes (its lookup appears or vanishes).
    static func editMembers(_ policy: inout Policy, _ g: inout SplitMix64) {
        var used = Set(policy.zones.flatMap { $0.members.map(\.value) })
        for _ in 0..<Int.random(in: 1...3, using: &g) {
            let z = Int.random(in: 0..<policy.zones.count, using: &g)
            let loc = policy.zones[z].location
            switch Int.random(in: 0..<6, using: &g) {
            case 0, 1, 2:
                let p = RandomPolicy.member(&g)
                if used.insert(p).inserted { policy.zones[z].members.append(Located(p, at: loc)) }
            case 3:
                if !policy.zones[z].members.isEmpty {
                    let m = policy.zones[z].members.remove(at: Int.random(in: 0..<policy.zones[z].members.count, using: &g))
                    used.remove(m.value)
                }
            case 4:
                // Move a member to another zone.
                let other = Int.random(in: 0..<policy.zones.count, using: &g)
                if !policy.zones[z].members.isEmpty {
                    let m = policy.zones[z].members.remove(at: Int.random(in: 0..<policy.zones[z].members.count, using: &g))
                    policy.zones[other].members.append(m)
                }
            default:
                // Every member of one family goes.
                let family: AddressFamily = Bool.random(using: &g) ? .ipv4 : .ipv6
                for m in policy.zones[z].members where m.value.family == family { used.remove(m.value) }
                policy.zones[z].members.removeAll { $0.value.family == family }
            }
        }
    }
}
