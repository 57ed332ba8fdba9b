import ArgumentParser
import HostIdentity
import ZonePolicy

/// `zonewall test`: checks every `expect:` entry.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "test", abstract: "Check the policy's expect: entries.")

    @OptionGroup var options: PolicyOptions

    func run() throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        let evaluator = Evaluator(policy, users: UserResolver.uid)
        var failed = 0
        for e in policy.expectations {
            let d = evaluator.decide(from: e.from, to: e.to, spec: e.port)
            if d.verdict != e.verdict {
                failed += 1
                var why = d.reason
                if let r = d.rule { why = "allowed by \(r.location.path):\(r.location.line)" }
                print("\(e.location.path):\(e.location.line): FAIL: \(e.from) → \(e.to) \(e.port): expected \(e.verdict.rawValue), got \(d.verdictText) (\(d.from) → \(d.to); \(why))")
            } else if d.audited {
                // Enforcement would deny it; until the zone leaves audit mode it passes.
                print("\(e.location.path):\(e.location.line): ok: \(e.from) → \(e.to) \(e.port): deny (audited: passes)")
            }
        }
        let passed = policy.expectations.count - failed
        print("\(passed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
