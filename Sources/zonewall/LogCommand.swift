import ArgumentParser
import Daemon
import FlowLog
import Foundation
import HostIdentity
import ZonePolicy

/// `zonewall log`: the live log of denied and audited flows.
struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Print denied and audited flows as the kernel logs them, classified into zones.",
        discussion: """
            When the daemon runs it owns the NFLOG group (only one listener can bind it), and this \
            command reads the daemon's stream over its root-only socket; otherwise it binds the \
            group (settings: log_group) itself. Repeats of a flow within a second are folded into \
            one record with a count. --json prints one object a line with the keys time, verdict, \
            hook, src, dst, proto, port (the ICMP type for ICMP), from, to, count. SIGINT/SIGTERM \
            end it cleanly.
            """
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var flowOptions: FlowSourceOptions

    @Flag(help: "One JSON object a line.") var json = false

    @Option(help: ArgumentHelp("Replay what the daemon kept since then: 30s, 10m, 1h, or an RFC 3339 time.", valueName: "WHEN"))
    var since: String?

    func validate() throws {
        if let since, FlowSourceOptions.parseSince(since, now: Date()) == nil {
            throw ValidationError("--since must be a duration (30s, 10m, 1h) or an RFC 3339 time, found '\(since)'")
        }
    }

    func run() async throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        if let why = Self.silence(policy) { printError("warning: \(why)") }
        let sinceDate = since.flatMap { FlowSourceOptions.parseSince($0, now: Date()) }
        let source = try flowOptions.open(policy: policy, since: sinceDate)
        let printer = FlowPrinter(policy: policy, json: json, stop: { source.stop() })
        // Records are classified with the policy in force: an edit of the files reaches a
        // follower left running, as it reaches the daemon.
        let watcher = try? PolicyWatcher(directory: options.policies)
        watcher?.start()
        let follower = Task { [directory = options.policies] in
            guard let watcher else { return }
            for await _ in watcher.changes {
                try? await Task.sleep(for: .milliseconds(300))  // an editor's save is several events
                let loaded = PolicyLoader.load(directory: directory, warnings: false, users: UserResolver.uid)
                if let policy = loaded.policy {
                    await printer.policyChanged(policy)
                } else {
                    printError("zonewall: warning: the policy files have \(loaded.errors.count) error(s) now; records are classified with the last valid policy")
                }
            }
        }
        defer {
            follower.cancel()
            watcher?.stop()
        }
        try await flowOptions.consume(source) { await printer.add($0) } tick: { await printer.tick() }
        try await printer.finish(lost: source.lost)
    }
}

extension LogCommand {
    /// Why this policy sends nothing to its NFLOG group, or nil: a follower would wait in silence.
    static func silence(_ policy: Policy) -> String? {
        let s = policy.settings
        if s.logTo == .kernel {
            return "the policy logs to the kernel log (log_to: kernel), not to NFLOG group \(s.logGroup): nothing will be shown; "
                + "read dmesg, or set log_to: nflog"
        }
        if !s.logDenied && !s.audit && !policy.zones.contains(where: \.audit) {
            return "the policy logs nothing: log_denied is false and no zone is in audit mode, so nothing reaches "
                + "NFLOG group \(s.logGroup); set settings: {log_denied: true}"
        }
        return nil
    }
}

/// Where a live flow log comes from, shared by `log` and `suggest --follow`.
struct FlowSourceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Bind the NFLOG group inside this network namespace.", valueName: "NAME"))
    var netns: String?

    @Option(help: ArgumentHelp("The daemon's flow log socket (default: /run/zonewall/flowlog-ns-DEV-INODE.sock, named by the network namespace's identity).", valueName: "PATH"))
    var socket: String?

    @Option(help: ArgumentHelp("Stop after this many seconds (default: until SIGINT/SIGTERM).", valueName: "SECONDS"))
    var duration: Double?

    /// The longest `--duration` or `--follow`: a year and a day, far beyond any use and far
    /// inside what a sleep in milliseconds can hold.
    static let maxSeconds: Double = 366 * 86400

    func validate() throws {
        if let duration { try Self.checkSeconds(duration, option: "--duration") }
    }

    /// Rejects a number of seconds that is not a finite positive number of at most `maxSeconds`
    /// (`nan`, `inf` and `1e300` would trap when converted to a sleep).
    static func checkSeconds(_ value: Double, option: String) throws {
        guard value.isFinite, value > 0, value <= maxSeconds else {
            // As written: 0, not 0.0.
            let found = value.isFinite && value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
            throw ValidationError("\(option) must be a positive number of seconds, at most \(Int(maxSeconds)) (366 days), found '\(found)'")
        }
    }

    /// The daemon's stream when it answers, else the NFLOG group itself.
    func open(policy: Policy, since: Date?) throws -> any PacketSource {
        let socket = self.socket ?? FlowStreamServer.defaultPath(netns: netns)
        if FileManager.default.fileExists(atPath: socket),
           let client = try? FlowStreamClient(path: socket, since: since, notice: { printError("zonewall: \($0)") }) {
            return client
        }
        if since != nil { printError("zonewall: warning: no daemon is running; --since replays only what the daemon kept") }
        do {
            return try NFLogListener(group: policy.settings.logGroup, namespace: netns)
        } catch {
            printError("zonewall: \(error)")
            throw ExitCode(2)
        }
    }

    /// Feeds every packet to `body` until the stream ends, the duration passes, or SIGINT/SIGTERM.
    func consume(_ source: any PacketSource, _ body: @escaping @Sendable (LoggedPacket) async -> Void,
                 tick: @escaping @Sendable () async -> Void) async throws {
        let stopper = Stopper(source)
        stopper.trap()
        defer { stopper.untrap() }
        if let duration {
            Task { try? await Task.sleep(for: .milliseconds(Int64(duration * 1000))); source.stop() }
        }
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                await tick()
            }
        }
        defer { ticker.cancel() }
        do {
            for try await p in source.packets() { await body(p) }
        } catch {
            printError("zonewall: \(error)")
            throw ExitCode(2)
        }
    }

    /// `30s`, `10m`, `2h`, `1d` before now, or an RFC 3339 time.
    static func parseSince(_ text: String, now: Date) -> Date? {
        if let unit = text.last, let n = Double(text.dropLast()), n.isFinite, n >= 0 {
            let scale: Double? = switch unit { case "s": 1; case "m": 60; case "h": 3600; case "d": 86400; default: nil }
            if let scale { return now.addingTimeInterval(-n * scale) }
        }
        return try? FlowTime.parse(text)
    }
}

/// Stops a packet source on SIGINT or SIGTERM, so the command ends through its normal path.
final class Stopper: @unchecked Sendable {
    let source: any PacketSource
    var signalSources: [any DispatchSourceSignal] = []

    init(_ source: any PacketSource) { self.source = source }

    func trap() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [source] in source.stop() }
            s.resume()
            signalSources.append(s)
        }
    }

    func untrap() { signalSources.forEach { $0.cancel() } }
}

/// Classifies, folds repeats, and writes each record as it is due (unbuffered: pipes and files
/// see it at once). Output that cannot be written stops the source; `finish` then ends the
/// command as `StandardOutput` says (quietly for a reader that went away).
actor FlowPrinter {
    var aggregator: FlowAggregator
    let json: Bool
    var suggester: Suggester
    var headerPrinted = false
    var hinted: Set<String> = []
    var records = 0
    /// Stops the packet source: called once, when output fails.
    let stop: @Sendable () -> Void
    /// The failed write's error; nothing more is written after it.
    var failure: (any Error)?

    init(policy: Policy, json: Bool, stop: @escaping @Sendable () -> Void = {}) {
        aggregator = FlowAggregator(policy: policy)
        suggester = Suggester(policy: policy, includeWorld: true)
        self.json = json
        self.stop = stop
    }

    func add(_ p: LoggedPacket) { emit(aggregator.add(p)) }

    /// Classifies from now on with `policy`: what was folded under the old one is written first.
    func policyChanged(_ policy: Policy) {
        emit(aggregator.flushAll())
        aggregator = FlowAggregator(policy: policy)
        suggester = Suggester(policy: policy, includeWorld: true)
        hinted = []
    }

    func tick() { emit(aggregator.flush(before: Date())) }

    func finish(lost: Int) throws {
        emit(aggregator.flushAll())
        if let failure { throw failure }
        if lost > 0 { printError("zonewall: \(lost) logged packet(s) lost before reaching zonewall (socket overrun)") }
    }

    /// Widths: a time is 24 characters (`2026-11-30T07:01:02.345Z`); values stand under their names.
    static let columns = [("TIME", 24), ("VERDICT", 7), ("HOOK", 7), ("FROM", 12), ("TO", 12), ("SRC", 24), ("DST", 24), ("PROTO", 6), ("PORT", 5), ("COUNT", 5)]

    static func row(_ cells: [String]) -> String {
        zip(cells, columns).map { $0.padding(toLength: max($1.1, $0.count), withPad: " ", startingAt: 0) }
            .joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }

    func emit(_ rs: [FlowRecord]) {
        guard !rs.isEmpty, failure == nil else { return }
        var out = ""
        for r in rs {
            records += 1
            if json {
                out += r.jsonLine + "\n"
                continue
            }
            if !headerPrinted {
                out += Self.row(Self.columns.map(\.0)) + "\n"
                headerPrinted = true
            }
            let p = r.packet
            out += Self.row([FlowTime.format(p.time), p.verdict.rawValue, p.hook.rawValue, r.from, r.to, p.src.description,
                             p.dst.description, ProtocolName.name(p.proto), p.port.map(String.init) ?? "-", String(r.count)]) + "\n"
            let key = "\(r.from)|\(r.to)|\(p.proto)|\(p.port.map(String.init) ?? "-")"
            if hinted.insert(key).inserted {
                let (rules, skipped) = suggester.suggest([r])
                if let rule = rules.first {
                    out += "  allow: {from: \(Suggester.scalar(r.from)), to: \(Suggester.scalar(r.to)), ports: [\(rule.ports.map(\.description).joined(separator: ", "))]}\n"
                } else if let s = skipped.first {
                    out += "  allow: none (\(s.reason))\n"
                } else {
                    out += "  allow: none needed (the current policy allows it)\n"
                }
            }
        }
        do {
            try StandardOutput.write(out)
        } catch {
            failure = error
            stop()
        }
    }
}
