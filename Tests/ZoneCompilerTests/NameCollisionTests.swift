@testable import Ruleset
import Testing
import ZonePolicy
@testable import ZoneCompiler

/// Objects named after zones never collide with the table's own objects, or with each other's,
/// whatever the zones are called: the kernel refuses a second set of the same name (`EEXIST`),
/// so a collision would make a policy that `check` accepts impossible to apply.
struct NameCollisionTests {
    /// Zones named like the table's own sets and chains, and like the suffixes and prefixes
    /// of zone objects, each with an address, an interface, a unit and a user, all reaching
    /// each other.
    static let names = ["all", "v4", "v6", "zoned", "audit", "deny", "invalid", "src", "addr", "src_addr", "out",
                        "in", "l1", "src_v4", "z", "m", "if", "ifz", "uid", "cg", "ports", "any", "forward", "input",
                        "output", "a_v4", "a", "ifz_src", "fi", "i", "o", "od", "ii"]

    static func policy() throws -> Policy {
        var yaml = "zones:\n"
        for (k, n) in names.enumerated() {
            yaml += "  \(n):\n    members: [192.0.2.\(k + 1), 2001:db8::\(k + 1)]\n"
            yaml += "    interfaces: [eth\(k)]\n"
            if k % 3 == 0 { yaml += "    units: [svc\(k).service]\n" }
            if k % 3 == 1 { yaml += "    users: [user\(k)]\n" }
        }
        yaml += "allow:\n"
        for (k, n) in names.enumerated() {
            yaml += "  - {from: \(n), to: [\(names[(k + 1) % names.count]), world, host], ports: [tcp/\(k + 1), icmp]}\n"
            yaml += "  - {from: world, to: \(n), ports: [udp/\(k + 1)]}\n"
        }
        let r = PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)])
        return try #require(r.policy, "\(r.diagnostics)")
    }

    @Test func everySetAndChainNameIsUnique() throws {
        let table = ZoneCompiler.compile(try Self.policy())
        let sets = table.sets.map(\.name)
        let chains = table.chains.map(\.name)
        #expect(Set(sets).count == sets.count, "sets named twice: \(Dictionary(grouping: sets, by: { $0 }).filter { $1.count > 1 }.keys.sorted())")
        #expect(Set(chains).count == chains.count, "chains named twice: \(Dictionary(grouping: chains, by: { $0 }).filter { $1.count > 1 }.keys.sorted())")
        // And the kernel model accepts the table's creation as apply sends it.
        let stages = Transaction.stages(creating: table, budget: .max)
        let built = try InMemoryKernel.run(stages[0].transaction, on: nil)
        #expect(built?.isEquivalent(to: table) == true)
    }
}
