import ArgumentParser
import Foundation
import HostIdentity
import PolicyReview
import Ruleset
import ZoneCompiler
import ZonePolicy

/// `zonewall check`: validates a policy and lints it for least privilege; exit 1 on errors
/// (and on warnings with `--strict`).
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Validate the policy and lint it for least privilege (--strict: warnings fail).")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, github
    }

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions

    @Option(help: "Output format: text, json or github (GitHub Actions annotations).")
    var format: Format = .text

    @Flag(help: ArgumentHelp(
        "Also send the full-replace batch to the kernel for validation only (like `nft -c`): nothing changes.",
        discussion: "Needs CAP_NET_ADMIN in the network namespace only, so `unshare -rn zonewall check --kernel` works without root."))
    var kernel = false

    @Flag(help: "Fail (exit 1) on warnings too, lints included.")
    var strict = false

    func validate() throws {
        if kernelOptions.netns != nil && !kernel { throw ValidationError("--netns needs --kernel") }
    }

    func run() throws {
        var result = PolicyLoader.load(directory: options.policies, users: UserResolver.uid)
        if let policy = result.policy {
            result.diagnostics = (result.diagnostics + Lint.check(policy) + Lockout.warnings(policy)).sortedByLocation
        }
        // Under --strict a warning fails the check, and every format says so.
        let strictFailure = strict && result.policy != nil && !result.warnings.isEmpty
        switch format {
        case .text:
            for d in result.diagnostics { printError(d.description) }
            if let policy = result.policy {
                let table = ZoneCompiler.compile(policy)
                print("\(strictFailure ? "failed (--strict: warnings fail)" : "ok"): \(policy.zones.count) zones, \(policy.zones.reduce(0) { $0 + $1.members.count }) members, "
                      + "\(policy.rules.count) allow rules, \(result.warnings.count) warnings; "
                      + "\(table.sets.count) sets, \(table.chains.count) chains, \(table.elementCount) elements")
            } else {
                printError("\(result.errors.count) error(s), \(result.warnings.count) warning(s)")
            }
        case .json:
            let items = result.diagnostics.map { d -> [String: Any] in
                var o: [String: Any] = ["severity": d.severity.rawValue, "file": d.location.path, "message": d.message]
                if d.location.line > 0 { o["line"] = d.location.line; o["column"] = d.location.column }
                if let h = d.hint { o["hint"] = h }
                return o
            }
            // "valid": the policy can be applied; "passed": the check passed (--strict: no warnings either).
            let doc: [String: Any] = ["valid": result.policy != nil, "passed": result.policy != nil && !strictFailure,
                                      "strict": strict, "errors": result.errors.count,
                                      "warnings": result.warnings.count, "diagnostics": items]
            let data = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        case .github:
            // Under --strict a warning fails the job: it is annotated as the error it is there.
            for d in result.diagnostics {
                var shown = d
                if strict { shown.severity = .error }
                print(shown.githubAnnotation)
            }
        }
        guard let policy = result.policy else { throw ExitCode(1) }
        if strictFailure {
            if format == .text { printError("zonewall: --strict: \(result.warnings.count) warning(s) fail the check") }
            throw ExitCode(1)
        }
        if kernel { try checkInKernel(ZoneCompiler.compile(policy)) }
    }

    /// Sends `Transaction.replace(with:)` with `NetlinkKernel.check`: validated, then aborted.
    func checkInKernel(_ table: Table) throws {
        let tx = Transaction.replace(with: table)
        let place = kernelOptions.place("the kernel")
        try withKernelErrors("checking the rule set in \(place)") {
            try kernelOptions.openKernel().check(tx)
        }
        if format == .text {
            print("ok: \(place) accepts the rule set (\(tx.changes.count) changes validated, nothing applied)")
        }
    }
}
