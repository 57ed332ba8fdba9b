import Ruleset
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// `ZoneCompiler.compile(_:reusing:)`: the same table as a fresh compile, with unchanged sets and
/// chains sharing the previous table's storage.
struct ReuseTests {
    static func address(of list: ElementList) -> UnsafeRawPointer? {
        list.withStorage { bytes, _ in bytes.baseAddress.map(UnsafeRawPointer.init) }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func reusingGivesTheSameTableAndSharesWhatDidNotChange(seed: UInt64) throws {
        let before = RandomPolicy.make(seed: seed, zones: 8, rules: 14)
        var after = before
        // One member more in the first zone that has any.
        let z = try #require(after.zones.firstIndex { !$0.members.isEmpty })
        let extra = IPPrefix(family: .ipv6, address: (0x2001_0db8_fffe << 80) | UInt128(seed), length: 128)
        after.zones[z].members.append(Located(extra, at: after.zones[z].members[0].location))

        let old = ZoneCompiler.compile(before)
        let fresh = ZoneCompiler.compile(after)
        let reused = ZoneCompiler.compile(after, reusing: old)
        #expect(reused == fresh)
        #expect(ZoneCompiler.compile(before, reusing: old) == old)

        var shared = 0, changed = 0
        for set in reused.sets where !set.elements.isEmpty {
            guard let previous = old.set(named: set.name) else { continue }  // a set the new member brought
            if previous.elements == set.elements {
                // Same elements: the very same buffer, not a copy.
                #expect(Self.address(of: set.elements) == Self.address(of: previous.elements), "\(set.name)")
                shared += 1
            } else {
                #expect(Self.address(of: set.elements) != Self.address(of: previous.elements), "\(set.name)")
                changed += 1
            }
        }
        #expect(changed >= 1, "the new member changes the zoned set at least")
        #expect(shared >= 1)
        // A table reused from nothing is just a compile.
        #expect(ZoneCompiler.compile(after, reusing: nil) == fresh)
    }
}
