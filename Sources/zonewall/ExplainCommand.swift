import ArgumentParser
import ZonePolicy

/// `zonewall explain FROM TO PORTSPEC`: the verdict and the rule that decided it.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain whether FROM may reach TO on PORTSPEC (exit 0 allow, 3 deny)."
    )

    @OptionGroup var options: PolicyOptions

    @Argument(help: "A zone, 'world', 'host', or an address.") var from: String
    @Argument(help: "A zone, 'world', 'host', or an address.") var to: String
    @Argument(help: "tcp/443, udp/53, tcp/8000-8099, tcp, icmp or any.") var portSpec: String

    func run() throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        let spec: PortSpec
        switch PortSpec.parse(portSpec) {
        case .success(let s): spec = s
        case .failure(let e):
            printError("error: bad port spec \(e.message)" + (e.hint.map { "\nnote: \($0)" } ?? ""))
            throw ExitCode(1)
        }
        let evaluator = Evaluator(policy)
        let src = try party(from, policy)
        let dst = try party(to, policy)
        let d = evaluator.decide(from: src, to: dst, spec: spec)
        print("\(d.verdict.rawValue): \(from) → \(to) \(spec)")
        if case .address = src { print("  from \(from) is in \(d.from)") }
        if case .address = dst { print("  to \(to) is in \(d.to)") }
        if let r = d.rule {
            print("  rule: \(r.location.path):\(r.location.line)" + (r.description.map { " (\($0))" } ?? ""))
        }
        print("  \(d.reason)")
        if d.verdict == .deny { throw ExitCode(3) }
    }

    func party(_ text: String, _ policy: Policy) throws -> Party {
        switch text {
        case "world": return .endpoint(.world)
        case "host": return .endpoint(.host)
        default:
            if policy.zone(named: text) != nil { return .endpoint(.zone(text)) }
            if let p = IPPrefix.parse(text), p.length == p.family.bits { return .address(p) }
            let hint = Spelling.closest(to: text, in: policy.zones.map(\.name) + ["world", "host"]).map { "\nnote: did you mean '\($0)'?" } ?? ""
            printError("error: '\(text)' is neither a zone nor an address" + hint)
            throw ExitCode(1)
        }
    }
}
