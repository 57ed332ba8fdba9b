import ArgumentParser
import Foundation
import PolicyReview
import ZonePolicy

/// `zonewall report`: one self-contained HTML page to review a policy (and a change to it).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report: reachability matrix, zones, and the diff against --base.")

    @OptionGroup var options: PolicyOptions

    @Option(help: "The HTML file to write.")
    var html: String

    @Option(help: "Also show the changes against this policy: a directory or a git revision.")
    var base: String?

    func run() throws {
        let policy: Policy
        var diff: PolicyDiff?
        if let base {
            let (old, new) = try loadBoth(base: base, policies: options.policies)
            policy = new
            diff = PolicyDiff(from: old, to: new)
        } else {
            policy = try options.loadOrExit(printWarnings: false).0
        }
        let page = HTMLReport(policy: policy, diff: diff, baseName: base).html
        do {
            try page.write(toFile: html, atomically: true, encoding: .utf8)
        } catch {
            printError("\(html): error: cannot write the report: \(error.localizedDescription)")
            throw ExitCode(1)
        }
        try StandardOutput.write("wrote \(html)" + (diff.map { ": \($0.summary)" } ?? "") + "\n")
    }
}
