import ArgumentParser
import HostIdentity
import ZonePolicy

extension PolicyOptions {
    /// Loads the policy; prints diagnostics to stderr and exits 1 when it has errors.
    /// With `strictModes`, an insecure policy is refused before it is read (`run`, `apply`).
    /// `changesKernel`: the command would have changed the kernel, and the last line says it did not.
    func loadOrExit(printWarnings: Bool = true, strictModes: StrictModes? = nil, changesKernel: Bool = false) throws -> (Policy, [Diagnostic]) {
        let result = PolicyLoader.load(directory: policies, strictModes: strictModes, users: UserResolver.uid)
        // One write for all of them: a large policy can have thousands of warnings.
        let shown = result.diagnostics.filter { $0.severity == .error || printWarnings }
        if !shown.isEmpty { printError(shown.map(\.description).joined(separator: "\n")) }
        guard let policy = result.policy else {
            printError("zonewall: policy has \(result.errors.count) error(s)" + (changesKernel ? "; nothing was changed" : ""))
            throw ExitCode(1)
        }
        return (policy, result.diagnostics)
    }
}

/// `--insecure-permissions`, for the commands that enforce a policy as root (`run`, `apply`).
struct PermissionOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Do not refuse a policy that users other than root can change (for tests only).",
        discussion: "Without it, run and apply refuse a policy directory, policy file or any directory above them that "
            + "is writable by a group or others, or owned by a user other than root, as sshd's StrictModes does. "
            + "Do not use it in production: whoever can write the policy can open the firewall of a root daemon."))
    var insecurePermissions = false

    /// The check to run, or nil when overridden.
    var strictModes: StrictModes? { insecurePermissions ? nil : .system }
}
