import TestSupport
import Foundation
import Glibc
import Ruleset
import Testing

/// Whether the process may create network namespaces and talk to nftables.
let isRoot = geteuid() == 0

/// Kernel tests carry this trait, so that without root they are reported as skipped, not passed.
let needsRoot = ConditionTrait.enabled(if: isRoot, "needs root (network namespaces + nftables)")

func skipUnlessRoot(_ test: String = #function) -> Bool {
    if !isRoot {
        print("""
        ********************************************************************
        ** SKIPPED \(test): needs root (network namespaces + nftables).
        ** Run `sudo swift test --filter KernelTests` to run zonewall against real kernels.
        ********************************************************************
        """)
    }
    return !isRoot
}

/// The checkout this test file belongs to.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// The zonewall binary built next to the test bundle (or `$ZONEWALL`).
let zonewallBinary: String = {
    if let z = ProcessInfo.processInfo.environment["ZONEWALL"] { return z }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("zonewall").path
}()

/// What a finished command did.
struct Outcome: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var duration: Duration
    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

/// Runs a command to completion; never throws on a non-zero exit.
///
/// posix_spawn and waitpid, with output going to files: Foundation's `Process` can miss the
/// exit of a short-lived child when many tests spawn at once, and hang in `waitUntilExit`.
@discardableResult
func exec(_ args: [String], input: String? = nil, environment: [String: String] = [:]) throws -> Outcome {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("zw-kt-exec-\(UInt64.random(in: 0...UInt64.max))").path
    let inPath = base + ".in", outPath = base + ".out", errPath = base + ".err"
    defer { for p in [inPath, outPath, errPath] { unlink(p) } }
    try (input ?? "").write(toFile: inPath, atomically: false, encoding: .utf8)

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
    let argv = (["/usr/bin/env"] + args).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }

    // The child starts with no blocked signals and default handlers, whatever this thread has.
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t(), all = sigset_t()
    sigemptyset(&none)
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setsigdefault(&attr, &all)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let start = ContinuousClock.now
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, "/usr/bin/env", &actions, &attr, argv, envp)
    guard rc == 0 else { throw TestFailure("posix_spawn \(args): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = status & 0x7f == 0
    let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    // Lossy: nft prints ranges of interface names as raw bytes, which are not UTF-8; a strict
    // decode would turn the whole output into "" and make listings compare equal vacuously.
    func read(_ p: String) -> String { FileManager.default.contents(atPath: p).map { String(decoding: $0, as: UTF8.self) } ?? "" }
    return Outcome(status: code, stdout: read(outPath), stderr: read(errPath), duration: ContinuousClock.now - start)
}

/// `zonewall ARGS…`.
@discardableResult
func zonewall(_ args: [String], environment: [String: String] = [:]) throws -> Outcome {
    try exec([zonewallBinary] + args, environment: environment)
}

/// A network namespace that exists for the duration of `body`, deleted even on failure.
func withNamespace<T>(_ body: (String) throws -> T) throws -> T {
    let name = "zw-kt-\(UInt32.random(in: 0...UInt32.max))"
    let made = try exec(["ip", "netns", "add", name])
    guard made.status == 0 else { throw TestFailure("ip netns add \(name): \(made)") }
    defer { _ = try? exec(["ip", "netns", "delete", name]) }
    return try body(name)
}

/// `nft …` inside the namespace; throws unless it succeeds.
@discardableResult
func nft(_ ns: String, _ args: [String], input: String? = nil) throws -> String {
    let o = try exec(["ip", "netns", "exec", ns, "nft"] + args, input: input)
    guard o.status == 0 else { throw TestFailure("nft \(args.joined(separator: " ")) in \(ns): \(o)") }
    return o.stdout
}

/// `nft list table inet zonewall` text, or nil when the table does not exist.
func listing(_ ns: String) throws -> String? {
    let o = try exec(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "zonewall"])
    return o.status == 0 ? o.stdout : nil
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A policy directory with the given files, deleted afterwards.
func withPolicy<T>(_ files: [String: String], _ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-kt-policy-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (name, text) in files { try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
    return try body(dir)
}

/// The repository's example policy, as files.
func examplePolicyFiles() throws -> [String: String] {
    let dir = "\(repoRoot)/Policies"
    var out: [String: String] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".yaml") {
        out[name] = try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)
    }
    return out
}

/// The table with sets and chains in name order and elements sorted: listing order is not meaningful.
func canonical(_ t: Table?) -> Table? {
    guard var t else { return nil }
    t.sets = t.sets.sorted { $0.name < $1.name }.map { var s = $0; s.elements = s.elements.sortedByKey(); return s }
    t.chains.sort { $0.name < $1.name }
    return t
}


/// Random policy files over the documentation ranges: nested prefixes, both families,
/// world and host rules, port ranges, both denied modes.
/// A policy whose rules from `web` to `db` admit more port ranges than a ports chain holds
/// inline, so that the chain looks them up in a set of its own.
func longAdmissionPolicy() -> [String: String] {
    ["zones.yaml": """
        zones:
          web: { members: [192.0.2.10, "2001:db8::10"] }
          db: { members: [192.0.2.20/31, "2001:db8::20"] }
        """,
     "rules.yaml": """
        allow:
          - { from: web, to: db, ports: [tcp/1000, tcp/1010-1015, tcp/1020, tcp/1030-1035, tcp/1040, udp/53] }
          - { from: web, to: db, ports: [tcp/1050-1055, tcp/1060, sctp, icmp] }
          - { from: db, to: web, ports: [tcp/5432, icmp] }
          - { from: db, to: world, ports: [any] }
        """]
}

func generatedPolicy(seed: UInt64) -> [String: String] {
    var g = SplitMix64(seed: seed)
    let nets = ["192.0.2", "198.51.100", "203.0.113"]
    var used = Set<String>()
    var zones = "zones:\n"
    let count = Int.random(in: 3...6, using: &g)
    for i in 0..<count {
        var members: [String] = []
        let target = Int.random(in: 1...3, using: &g)
        for _ in 0..<20 where members.count < target {
            let m: String
            if Bool.random(using: &g) {
                let len = [24, 25, 26, 27, 28, 29, 30, 32].randomElement(using: &g)!
                let host = Int.random(in: 0...255, using: &g) & ~((1 << (32 - len)) - 1)
                m = "\(nets.randomElement(using: &g)!).\(host)/\(len)"
            } else {
                let len = [48, 56, 64, 128].randomElement(using: &g)!
                let sub = Int.random(in: 1...9, using: &g)
                m = len == 128 ? "\"2001:db8:\(sub)::\(Int.random(in: 1...99, using: &g))\"" : "\"2001:db8:\(sub)::/\(len)\""
            }
            if used.insert(m).inserted { members.append(m) }
        }
        zones += "  z\(i):\n    members: [\(members.joined(separator: ", "))]\n"
    }
    func endpoint() -> String {
        switch Int.random(in: 0..<8, using: &g) {
        case 0: "world"
        case 1: "host"
        default: "z\(Int.random(in: 0..<count, using: &g))"
        }
    }
    func spec() -> String {
        let p = ["tcp", "udp"].randomElement(using: &g)!
        switch Int.random(in: 0..<8, using: &g) {
        case 0: return "icmp"
        case 1: return p
        case 2, 3:
            let lo = Int.random(in: 1000...1100, using: &g)
            return "\(p)/\(lo)-\(lo + Int.random(in: 1...50, using: &g))"
        default: return "\(p)/\([22, 53, 80, 443, 5432].randomElement(using: &g)!)"
        }
    }
    var rules = "allow:\n"
    for _ in 0..<Int.random(in: 3...10, using: &g) {
        var from = endpoint(), to = endpoint()
        if !from.hasPrefix("z") && !to.hasPrefix("z") { from = "z0"; to = to == "z0" ? "world" : to }
        rules += "  - from: \(from)\n    to: \(to)\n    ports: [\((0..<Int.random(in: 1...3, using: &g)).map { _ in spec() }.joined(separator: ", "))]\n"
    }
    rules += "settings:\n  denied: \(Bool.random(using: &g) ? "drop" : "reject")\n  log_denied: \(Bool.random(using: &g))\n"
    return ["zones.yaml": zones, "rules.yaml": rules]
}
