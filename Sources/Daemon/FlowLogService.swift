import FlowLog
import Foundation
import Logging
import Prometheus
import Reconciler
import ZonePolicy

/// Where the daemon's flow log listens and reports.
public struct FlowLogConfiguration: Sendable {
    /// Bind the NFLOG group inside this network namespace (the one the daemon enforces).
    public var namespace: String?
    /// The root-only socket `zonewall log` reads.
    public var socketPath: String
    /// Top denied pairs of the last hour, for `zonewall status`; nil disables it.
    public var summaryFile: String?

    /// A configuration.
    public init(namespace: String?, socketPath: String = FlowStreamServer.defaultPath, summaryFile: String? = "/run/zonewall/flows.json") {
        self.namespace = namespace
        self.socketPath = socketPath
        self.summaryFile = summaryFile
    }
}

extension FlowLogConfiguration {
    /// Named as the daemon's state file is (`StateFile.defaultPath`): by the namespace's
    /// identity and the policy directory, `/run/zonewall/flows-ns-DEV-INODE-HASH.json`. A
    /// namespace deleted and created again under the same name is another namespace, and
    /// shows no summary of the daemon that enforced in the earlier one.
    public static func defaultSummaryFile(netns: String?, policyDirectory: String, directory: String = "/run/zonewall") -> String {
        let state = StateFile.defaultPath(namespace: netns, policyDirectory: policyDirectory, directory: directory)
        return directory + "/flows-" + state.dropFirst(directory.count + "/state-".count)
    }
}

/// What `zonewall status` shows of the flow log.
public struct FlowSummary: Codable, Sendable {
    /// One zone pair's packets in the last hour.
    public struct Pair: Codable, Sendable {
        public var from: String
        public var to: String
        public var verdict: String
        public var packets: Int
    }
    public var at: Date
    public var group: UInt16
    public var top: [Pair]
    /// Logged packets lost before zonewall read them (socket overruns); the kernel's rate limit is not counted here.
    public var lost: Int
    public var records: Int
    /// False while another listener holds the NFLOG group (the daemon binds it once it is free);
    /// nil in summaries written before this was recorded.
    public var bound: Bool?

    /// Reads the file the daemon writes.
    public static func read(_ path: String) throws -> FlowSummary {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return try d.decode(FlowSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// The daemon's side of the flow log: owns the NFLOG group, counts denied and audited packets
/// per zone pair (`zonewall_denied_packets_total{from,to,verdict}`, at most 1,000 series), and
/// shares the stream with `zonewall log` over a root-only unix socket.
public final class FlowLogService: @unchecked Sendable {
    let config: FlowLogConfiguration
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    private let lock = NSLock()
    /// The policy in force, and the classifier built from it at the first logged packet: its
    /// indexes take O(members) memory (7 MB at 10,000 zones), which a host that logs nothing
    /// need not hold.
    private var policy: Policy
    private var classifier: FlowAggregator?
    private var counters = DeniedCounters(maxSeries: 1000)
    private var metricCounters: [DeniedCounters.Series: Counter] = [:]
    private var records = 0
    private let listener: NFLogListener
    private let server: FlowStreamServer
    /// The NFLOG group the daemon owns.
    public let group: UInt16

    /// Binds the policy's NFLOG group and opens the socket. `policy` is the one in force; nil
    /// reads the policy directory.
    public init(configuration: FlowLogConfiguration, policy inForce: Policy? = nil, policyDirectory: String,
                registry: PrometheusCollectorRegistry, logger: Logger) throws {
        config = configuration
        self.registry = registry
        self.logger = logger
        let policy = inForce ?? PolicyLoader.load(directory: policyDirectory).policy ?? Policy(zones: [], rules: [])
        self.policy = policy
        group = policy.settings.logGroup
        // A `zonewall log` started before the daemon holds the group: the daemon takes it over
        // as soon as that follower ends, instead of running without a flow log until restarted.
        listener = try NFLogListener(group: group, namespace: configuration.namespace, waitIfTaken: true)
        do {
            server = try FlowStreamServer(path: configuration.socketPath)
        } catch {
            listener.stop()
            throw error
        }
    }

    /// Classifies the records from now on with the zones of `policy`, the one in force.
    public func policyChanged(_ policy: Policy) {
        lock.withLock {
            self.policy = policy
            classifier = nil
        }
    }

    /// Reads the group until `stop()`; writes the status summary every few seconds.
    public func run() async {
        writeSummary()
        let summaryTask = Task { [self] in
            var wasBound = listener.isBound
            if !wasBound {
                logger.warning("flow log: NFLOG group \(group) is held by another listener (a `zonewall log` started before the daemon?); binding it once it is free")
            }
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(5))
                if Task.isCancelled { break }
                let bound = listener.isBound
                if bound && !wasBound { logger.info("flow log: NFLOG group \(group) bound") }
                wasBound = bound
                writeSummary()
            }
        }
        do {
            for try await p in listener.packets() { handle(p) }
        } catch {
            logger.error("flow log stopped", metadata: ["error": "\(error)"])
        }
        summaryTask.cancel()
        _ = await summaryTask.value  // its last write must not race the final one
        writeSummary()
    }

    /// Unbinds the group and closes the socket; `run()` then returns.
    public func stop() {
        listener.stop()
        server.close()
    }

    func handle(_ p: LoggedPacket) {
        server.publish(p)
        let (series, counter): (DeniedCounters.Series, Counter?) = lock.withLock {
            if classifier == nil { classifier = FlowAggregator(policy: policy) }
            let r = classifier!.classify(p)
            records += 1
            let s = counters.add(r)
            if let c = metricCounters[s] { return (s, c) }
            let c = registry.makeCounter(descriptor: DaemonMetrics.named("zonewall_denied_packets_total"),
                                         labels: [("from", s.from), ("to", s.to), ("verdict", s.verdict.rawValue)])
            metricCounters[s] = c
            return (s, c)
        }
        _ = series
        counter?.increment()
    }

    func writeSummary() {
        guard let path = config.summaryFile else { return }
        let summary: FlowSummary = lock.withLock {
            FlowSummary(at: Date(), group: group,
                        top: counters.top(10, hourBefore: Date()).map { .init(from: $0.series.from, to: $0.series.to, verdict: $0.series.verdict.rawValue, packets: $0.packets) },
                        lost: listener.lost, records: records, bound: listener.isBound)
        }
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try PrivateFile.write(try e.encode(summary), to: path)
        } catch {
            logger.warning("cannot write flow summary", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
