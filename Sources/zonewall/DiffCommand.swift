import ArgumentParser
import Foundation
import HostIdentity
import PolicyReview
import ZonePolicy

/// `zonewall diff`: what a policy change opens and closes, computed from the policies' meaning.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what a policy change opens and closes (semantic: reordering or respelling changes nothing).",
        discussion: "Exit codes: 0 no change in meaning, 5 reachability, members or zones changed, 1 either policy is invalid.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, markdown, json
    }

    @OptionGroup var options: PolicyOptions

    @Option(help: "The policy to compare against: a directory, or a git revision (e.g. origin/main) of the repository holding --policies.")
    var base: String

    @Option(help: "Output format: text, markdown (a pull-request comment body) or json.")
    var format: Format = .text

    func run() throws {
        let (old, new) = try loadBoth(base: base, policies: options.policies)
        let diff = PolicyDiff(from: old, to: new)
        switch format {
        case .text: try StandardOutput.write(diff.text)
        case .markdown: try StandardOutput.write(diff.markdown)
        case .json: try StandardOutput.write(diff.json.rendered)
        }
        if !diff.isEmpty { throw ExitCode(5) }
    }
}

/// Loads the base and the current policy side by side (two loads on two CPUs).
func loadBoth(base: String, policies: String) throws -> (Policy, Policy) {
    nonisolated(unsafe) var head: LoadResult?
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { head = PolicyLoader.load(directory: policies, users: UserResolver.uid) }
    let old: Policy
    do {
        old = try PolicyBase.load(base, policies: policies)
    } catch {
        group.wait()
        throw error
    }
    group.wait()
    let new = try PolicyBase.validOrExit(head!, what: "the policy (\(policies))")
    return (old, new)
}
