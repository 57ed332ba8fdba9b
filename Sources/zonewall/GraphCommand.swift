import ArgumentParser
import Foundation
import PolicyReview
import ZonePolicy

/// `zonewall graph`: the zones and the allowed flows between them as a picture.
struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Draw zones, world and host, and the allowed flows between them (mermaid, dot or svg).")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case mermaid, dot, svg
    }

    @OptionGroup var options: PolicyOptions

    @Option(help: "Output format: mermaid (renders in GitHub markdown), dot (Graphviz) or svg (runs Graphviz's dot).")
    var format: Format = .mermaid

    @Option(help: "Draw only this zone and its neighbours, so a large policy stays readable.")
    var zone: String?

    func run() throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        if let zone, policy.zone(named: zone) == nil {
            let hint = Spelling.closest(to: zone, in: policy.zones.map(\.name)).map { " (did you mean '\($0)'?)" } ?? ""
            printError("zonewall: --zone: no zone named '\(zone)'\(hint)")
            throw ExitCode(1)
        }
        // Audit zones are drawn dashed once zones have an audit flag: pass `isAudit: { $0.audit }` here.
        let graph = PolicyGraph(policy, zone: zone)
        switch format {
        case .mermaid: try StandardOutput.write(graph.mermaid)
        case .dot: try StandardOutput.write(graph.dot)
        case .svg:
            guard let dot = PolicyBase.findExecutable("dot") else {
                printError("zonewall: --format svg needs Graphviz's 'dot', which is not installed")
                printError("zonewall: note: install it (apt-get install graphviz, dnf install graphviz, brew install graphviz), or use --format dot")
                throw ExitCode(1)
            }
            let r = PolicyBase.run(dot, ["-Tsvg"], input: graph.dot)
            guard r.status == 0 else {
                printError("zonewall: dot -Tsvg failed (exit \(r.status)): \(r.stderr)")
                throw ExitCode(1)
            }
            try StandardOutput.write(r.stdout)
        }
    }
}
