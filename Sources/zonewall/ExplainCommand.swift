import ArgumentParser
import Foundation
import ZonePolicy

/// `zonewall explain FROM TO PORTSPEC`: the verdict and the rule that decided it.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain whether FROM may reach TO on PORTSPEC (exit 0 allow, 3 deny).",
        discussion: """
            With --batch, reads one `FROM TO PORTSPEC` query per line from standard input and prints
            `allow|deny|audit FROM TO PORTSPEC` per line (audit: denied, but the zone is in audit mode) (exit 0, or 1 if a line is malformed): one process
            for thousands of queries, as the namespace lab uses it.
            """
    )

    @OptionGroup var options: PolicyOptions

    @Argument(help: "A zone, 'world', 'host', an address, unit:NAME, cgroup:/PATH, user:NAME|UID or iface:NAME.") var from: String?
    @Argument(help: "A zone, 'world', 'host', an address, unit:NAME, cgroup:/PATH or iface:NAME.") var to: String?
    @Argument(help: "tcp/443, udp/53, tcp/8000-8099, tcp, icmp or any.") var portSpec: String?

    @Flag(help: "Read queries from standard input, one `FROM TO PORTSPEC` per line.")
    var batch = false

    func validate() throws {
        if batch {
            if from != nil { throw ValidationError("--batch reads queries from standard input; give no FROM TO PORTSPEC") }
        } else if portSpec == nil {
            throw ValidationError("expected FROM TO PORTSPEC")
        }
    }

    func run() throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        let evaluator = Evaluator(policy)
        if batch { return try runBatch(policy, evaluator) }
        let spec = try parseSpec(portSpec!)
        let src = try party(from!, policy)
        let dst = try party(to!, policy)
        let d = evaluator.decide(from: src, to: dst, spec: spec)
        print("\(d.verdictText): \(from!) → \(to!) \(spec)")
        if case .endpoint = src {} else { print("  from \(from!) is in \(d.from)") }
        if case .endpoint = dst {} else { print("  to \(to!) is in \(d.to)") }
        if let r = d.rule {
            print("  rule: \(r.location.path):\(r.location.line)" + (r.description.map { " (\($0))" } ?? ""))
        }
        print("  \(d.reason)")
        if d.verdict == .deny { throw ExitCode(3) }
    }

    func runBatch(_ policy: Policy, _ evaluator: Evaluator) throws {
        var bad = 0
        var out = ""
        while let line = readLine() {
            let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            guard words.count == 3, let spec = try? parseSpec(words[2]),
                  let src = try? party(words[0], policy), let dst = try? party(words[1], policy) else {
                printError("error: cannot explain '\(line)'")
                bad += 1
                continue
            }
            let d = evaluator.decide(from: src, to: dst, spec: spec)
            out += "\(d.audited ? "audit" : d.verdict.rawValue) \(words[0]) \(words[1]) \(words[2])\n"
        }
        print(out, terminator: "")
        if bad > 0 { throw ExitCode(1) }
    }

    func parseSpec(_ text: String) throws -> PortSpec {
        switch PortSpec.parse(text) {
        case .success(let s): return s
        case .failure(let e):
            printError("error: bad port spec \(e.message)" + (e.hint.map { "\nnote: \($0)" } ?? ""))
            throw ExitCode(1)
        }
    }

    func party(_ text: String, _ policy: Policy) throws -> Party {
        switch text {
        case "world": return .endpoint(.world)
        case "host": return .endpoint(.host)
        default:
            if policy.zone(named: text) != nil { return .endpoint(.zone(text)) }
            if let identity = Party.identity(text) {
                if case .cgroup(let c) = identity {
                    guard c.hasPrefix("/") else {
                        printError("error: '\(text)': a cgroup path is absolute, from the cgroup2 root (cgroup:/system.slice/x.service)")
                        throw ExitCode(1)
                    }
                    return .cgroup(IdentityNames.normalizedCgroup(c))
                }
                return identity
            }
            if let p = IPPrefix.parse(text), p.length == p.family.bits { return .address(p) }
            let hint = Spelling.closest(to: text, in: policy.zones.map(\.name) + ["world", "host"]).map { "\nnote: did you mean '\($0)'?" } ?? ""
            printError("error: '\(text)' is neither a zone, an address, nor unit:/cgroup:/user:/iface:" + hint)
            throw ExitCode(1)
        }
    }
}
