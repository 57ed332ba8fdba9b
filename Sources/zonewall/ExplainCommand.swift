import ArgumentParser
import Foundation
import HostIdentity
import ZonePolicy

/// `zonewall explain FROM TO PORTSPEC`: the verdict and the rule that decided it.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain whether FROM may reach TO on PORTSPEC (exit 0 allow, 3 deny).",
        discussion: """
            With --batch, reads one `FROM TO PORTSPEC` query per line from standard input and prints \
            one answer per query, in order: `allow|deny|audit|error FROM TO PORTSPEC` (audit: denied, \
            but the zone is in audit mode; error: the query cannot be answered, the reason on stderr \
            with its line number, and exit 1): one process for thousands of queries, as the \
            namespace lab uses it.
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
        let evaluator = Evaluator(policy, users: UserResolver.uid)
        if batch { return try runBatch(policy, evaluator) }
        let src: Party, dst: Party, spec: PortSpec
        do throws(QueryError) {
            (src, dst, spec) = try query(from!, to!, portSpec!, policy)
        } catch {
            printError("error: \(Self.escaped(error.message))")
            throw ExitCode(1)
        }
        let d = evaluator.decide(from: src, to: dst, spec: spec)
        // The query is echoed as given, with control and bidi characters escaped, as check does.
        let (from, to) = (Diagnostic.escaped(from!), Diagnostic.escaped(to!))
        print("\(d.verdictText): \(from) → \(to) \(spec)")
        if case .endpoint = src {} else { print("  from \(from) is in \(d.from)") }
        if case .endpoint = dst {} else { print("  to \(to) is in \(d.to)") }
        if let r = d.rule {
            print("  rule: \(r.location)" + (r.description.map { " (\($0))" } ?? ""))
        }
        // The deciding rule's line already says what "allowed by the rule at …" would.
        if d.rule.map({ d.reason != "allowed by the rule at \($0.location)" }) ?? true { print("  \(d.reason)") }
        if d.verdict == .deny { throw ExitCode(3) }
    }

    /// A message's lines, each with control and bidi characters escaped (the values it quotes).
    static func escaped(_ message: String) -> String {
        message.split(separator: "\n", omittingEmptySubsequences: false).map { Diagnostic.escaped(String($0)) }.joined(separator: "\n")
    }

    /// One line of output per query line, in order: `allow|deny|audit FROM TO SPEC`, or
    /// `error FROM TO SPEC` (the reason on stderr, with the line number), so that a consumer
    /// can pair answers with questions.
    func runBatch(_ policy: Policy, _ evaluator: Evaluator) throws {
        var bad = 0
        var out = ""
        var number = 0
        while let line = readLine() {
            number += 1
            let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            do throws(QueryError) {
                guard words.count == 3 else { throw QueryError("expected FROM TO PORTSPEC, found \(words.count) word(s)") }
                let (src, dst, spec) = try query(words[0], words[1], words[2], policy)
                let d = evaluator.decide(from: src, to: dst, spec: spec)
                out += "\(d.audited ? "audit" : d.verdict.rawValue) \(Diagnostic.escaped(words.joined(separator: " ")))\n"
            } catch {
                printError("error: line \(number): \(Self.escaped(error.message))")
                out += "error \(Diagnostic.escaped(words.joined(separator: " ")))\n"
                bad += 1
            }
        }
        print(out, terminator: "")
        if bad > 0 { throw ExitCode(1) }
    }

    struct QueryError: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// FROM, TO and PORTSPEC read and checked together: a user only sends, and two addresses
    /// must be of one family (no packet goes from an IPv4 address to an IPv6 one).
    func query(_ from: String, _ to: String, _ spec: String, _ policy: Policy) throws(QueryError) -> (Party, Party, PortSpec) {
        let src = try party(from, policy), dst = try party(to, policy)
        if case .user = dst { throw QueryError("'\(to)': a user is only a sender; name the receiving zone, unit or address") }
        if case .address(let a) = src, case .address(let b) = dst, a.family != b.family {
            let name = { (f: AddressFamily) in f == .ipv4 ? "IPv4" : "IPv6" }
            throw QueryError("'\(from)' is an \(name(a.family)) address and '\(to)' an \(name(b.family)) one: no packet goes between them")
        }
        switch PortSpec.parse(spec) {
        case .success(let s): return (src, dst, s)
        case .failure(let e): throw QueryError("bad port spec \(e.message)" + (e.hint.map { "\nnote: \($0)" } ?? ""))
        }
    }

    func party(_ text: String, _ policy: Policy) throws(QueryError) -> Party {
        switch text {
        case "world": return .endpoint(.world)
        case "host": return .endpoint(.host)
        default:
            if policy.zone(named: text) != nil { return .endpoint(.zone(text)) }
            if let identity = Party.identity(text) {
                switch identity {
                case .cgroup(let c):
                    guard c.hasPrefix("/") else {
                        throw QueryError("'\(text)': a cgroup path is absolute, from the cgroup2 root (cgroup:/system.slice/x.service)")
                    }
                    return .cgroup(IdentityNames.normalizedCgroup(c))
                case .unit(let u) where Glob.isGlob(u):
                    throw QueryError("'\(text)': a query names one unit, not a glob\nnote: write the unit's name")
                case .interface(let i) where i.hasSuffix("*"):
                    throw QueryError("'\(text)': a query names one interface, not a wildcard\nnote: write the interface's name")
                case .unit(let u):
                    if let problem = IdentityNames.unitProblem(u) { throw QueryError(problem.message + "\nnote: " + problem.hint) }
                case .user(let u):
                    if let problem = IdentityNames.userProblem(u) { throw QueryError(problem.message + "\nnote: " + problem.hint) }
                case .interface(let i):
                    if let problem = IdentityNames.interfaceProblem(i) { throw QueryError(problem.message + "\nnote: " + problem.hint) }
                default: break
                }
                return identity
            }
            if let p = IPPrefix.parse(text), p.length == p.family.bits { return .address(p) }
            let hint = Spelling.closest(to: text, in: policy.zones.map(\.name) + ["world", "host"]).map { "\nnote: did you mean '\($0)'?" } ?? ""
            throw QueryError("'\(text)' is neither a zone, an address, nor unit:/cgroup:/user:/iface:" + hint)
        }
    }
}
