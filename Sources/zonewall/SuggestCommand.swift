import ArgumentParser
import FlowLog
import Foundation
import ZonePolicy

/// `zonewall suggest`: the least allow rules that admit what the flow log saw.
struct SuggestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suggest",
        abstract: "Print the least allow rules (YAML) that admit the denied and audited flows seen.",
        discussion: """
            Reads `zonewall log --json` output (--from-log FILE, '-' for standard input), or the live \
            log for --follow SECONDS. Ports are merged into ranges only where contiguous; no rule is \
            wider than what was seen. Flows the policy already allows are left out, and so are rules \
            with world at either end unless --include-world is given.
            """
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var flowOptions: FlowSourceOptions

    @Option(help: ArgumentHelp("`zonewall log --json` output to read; - for standard input.", valueName: "FILE"))
    var fromLog: String?

    @Option(help: ArgumentHelp("Read the live log for this many seconds instead.", valueName: "SECONDS"))
    var follow: Double?

    @Flag(help: "Also suggest rules between a zone and world.")
    var includeWorld = false

    /// How long to read the live log: `--follow`, or the shared `--duration` that means the same here.
    var liveSeconds: Double? { follow ?? flowOptions.duration }

    func validate() throws {
        if follow != nil && flowOptions.duration != nil {
            throw ValidationError("--follow and --duration both say how long to read the live log: give one")
        }
        guard (fromLog == nil) != (liveSeconds == nil) else {
            throw ValidationError("give exactly one of --from-log FILE and --follow SECONDS")
        }
        if let follow { try FlowSourceOptions.checkSeconds(follow, option: "--follow") }
    }

    func run() async throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        let records: [FlowRecord]
        let source: String
        if let fromLog {
            records = try Self.read(fromLog)
            source = fromLog == "-" ? "standard input" : fromLog
        } else {
            var live = flowOptions
            let seconds = liveSeconds!
            live.duration = seconds
            let packets = try live.open(policy: policy, since: nil)
            let collector = Collector(policy: policy)
            let start = ContinuousClock.now
            try await live.consume(packets) { await collector.add($0) } tick: {}
            records = await collector.records
            // What was read: SIGINT or SIGTERM may have ended it early.
            let elapsed = ContinuousClock.now - start
            let read = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            source = read < seconds - 0.5
                ? String(format: "%.1f s of the live log (stopped before the %@ s asked for)", read, Self.seconds(seconds))
                : "\(Self.seconds(seconds)) s of the live log"
        }
        let (rules, skipped) = Suggester(policy: policy, includeWorld: includeWorld).suggest(records)
        try StandardOutput.write(Suggester.yaml(rules, skipped: skipped, source: source))
    }

    /// `30` for 30.0, `2.5` for 2.5.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// Every record of a `zonewall log --json` file; a malformed line is a `path:line:col` error, exit 1.
    static func read(_ path: String) throws -> [FlowRecord] {
        let data: Data
        var isDirectory: ObjCBool = false
        if path != "-", FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            printError("\(path): error: cannot read: is a directory (give the file `zonewall log --json` wrote)")
            throw ExitCode(1)
        }
        do {
            data = path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            // The system's reason (No such file or directory), not Foundation's error domain and code.
            let reason = ((error as? CocoaError)?.underlying as? POSIXError).map { String(cString: strerror($0.code.rawValue)) }
                ?? error.localizedDescription
            printError("\(path): error: cannot read: \(reason)")
            throw ExitCode(1)
        }
        var out: [FlowRecord] = []
        var bad = 0
        let decoder = JSONDecoder()
        let lines = data.split(separator: 10, omittingEmptySubsequences: false)
        for (i, line) in lines.enumerated() {
            if line.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            do {
                out.append(try decoder.decode(FlowRecord.self, from: Data(line)))
            } catch {
                // A last line with no newline that does not parse: the log was cut while it was
                // written (`zonewall log --json` killed mid-record). Everything before it counts.
                if i == lines.count - 1, data.last != 10 {
                    printError("\(path):\(i + 1):1: warning: the last line is cut short (was the log still being written?); skipped")
                    continue
                }
                bad += 1
                if bad <= 20 { printError("\(path):\(i + 1):1: error: not a `zonewall log --json` record: \(Self.why(error))") }
            }
        }
        if bad > 0 {
            printError("zonewall: \(bad) line(s) of \(path) are not flow log records; nothing suggested")
            throw ExitCode(1)
        }
        return out
    }

    /// What is wrong with a line, in words (not the decoder's).
    static func why(_ error: any Error) -> String {
        func key(_ c: DecodingError.Context) -> String { c.codingPath.map(\.stringValue).joined(separator: ".") }
        return switch error {
        case DecodingError.keyNotFound(let k, let c): "missing key '\(c.codingPath.isEmpty ? k.stringValue : key(c) + "." + k.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            c.codingPath.isEmpty ? "not a JSON object" : "bad value for '\(key(c))'"
        // The record's own checks say what is wrong ('count' must be …); Foundation's enum
        // message (Cannot initialize LogVerdict from …) does not.
        case DecodingError.dataCorrupted(let c) where c.codingPath.isEmpty: "malformed JSON"
        case DecodingError.dataCorrupted(let c) where c.debugDescription.isEmpty || c.debugDescription.hasPrefix("Cannot initialize"):
            "bad value for '\(key(c))'"
        case DecodingError.dataCorrupted(let c): c.debugDescription
        default: "\(error)"
        }
    }
}

/// Gathers live packets as records for `suggest --follow`.
actor Collector {
    let aggregator: FlowAggregator
    var records: [FlowRecord] = []

    init(policy: Policy) { aggregator = FlowAggregator(policy: policy) }

    func add(_ p: LoggedPacket) { records.append(aggregator.classify(p)) }
}
