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

    /// Bench-only: the previous release's table shape, to measure the current one against.
    @Flag(name: .customLong("release-shape"), help: .hidden) var releaseShape = false

    func run() throws {
        let (policy, _) = try options.loadOrExit()
        let host = GatheredHostFacts.gather(policy)
        let table = releaseShape ? ZoneCompiler.compileReleaseShape(policy)
            : try withExit2 { try scopeOptions.compile(policy, netns: nil, host: host.facts) }
        var header = """
            zonewall plan: \(policy.zones.count) zones, \(policy.rules.count) allow rules, \(table.elementCount) set elements.
            Apply with `nft -f FILE`: it replaces table \(table.family) \(table.name) atomically and touches nothing else.
            """
        // Cgroup ids are inode numbers, valid only while the cgroup exists: say which path each one is.
        for line in host.resolved { header += "\n\(line)" }
        for d in host.missing { header += "\nNOT FOUND (matches nothing until it appears): \(d.location): \(d.message)" }
        // Piece by piece: joining 20 MB of script (10,000 zones) only to write it costs a copy.
        for piece in NftText.replaceScriptPieces(table, header: header) { try StandardOutput.write(piece) }
    }
}
