import ArgumentParser
import ZonePolicy

extension PolicyOptions {
    /// Loads the policy; prints diagnostics to stderr and exits 1 when it has errors.
    func loadOrExit(printWarnings: Bool = true) throws -> (Policy, [Diagnostic]) {
        let result = PolicyLoader.load(directory: policies)
        for d in result.diagnostics where d.severity == .error || printWarnings {
            printError(d.description)
        }
        guard let policy = result.policy else {
            printError("zonewall: policy has \(result.errors.count) error(s); nothing was changed")
            throw ExitCode(1)
        }
        return (policy, result.diagnostics)
    }
}
