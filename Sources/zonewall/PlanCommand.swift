import ArgumentParser
import Ruleset
import ZoneCompiler
import ZonePolicy

/// `zonewall plan`: the complete rule set as an nft script.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Print the compiled rule set as an nft script (`nft -f` replaces table inet zonewall with it, atomically)."
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var scopeOptions: ScopeOptions

    func run() throws {
        let (policy, _) = try options.loadOrExit()
        let table = try withExit2 { try scopeOptions.compile(policy, netns: nil) }
        let header = """
            zonewall plan: \(policy.zones.count) zones, \(policy.rules.count) allow rules, \(table.elementCount) set elements.
            Apply with `nft -f FILE`: it replaces table \(table.family) \(table.name) atomically and touches nothing else.
            """
        print(NftText.replaceScript(table, header: header), terminator: "")
    }
}
