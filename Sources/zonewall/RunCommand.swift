import ArgumentParser
import Daemon
import FlowLog
import Foundation
import Logging
import Reconciler
import ServiceLifecycle

/// `zonewall run`: the reconciling daemon.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: enforce the policy, reload on edits and SIGHUP, repair drift.",
        discussion: """
            SIGTERM and SIGINT stop the daemon and leave the rules in force (fail-closed);
            --remove-on-exit deletes the table instead. An invalid policy at start keeps an
            existing table in force; with no table, the daemon refuses to start (exit 1).
            """
    )

    enum LogFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions

    @Option(help: "State file that `zonewall status` reads.")
    var stateFile: String = "/run/zonewall/state.json"

    @Option(help: "Seconds between full resyncs of the kernel table (the backstop to drift events).")
    var resyncInterval: Double = 60

    @Option(help: "Log format: text or json (one object per line).")
    var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Serve Prometheus metrics on this loopback address, e.g. 127.0.0.1:9715.", valueName: "HOST:PORT"))
    var metricsAddress: String?

    @Flag(help: "Delete table inet zonewall on SIGTERM/SIGINT instead of leaving it in force.")
    var removeOnExit = false

    @Option(help: ArgumentHelp("The flow log socket that `zonewall log` reads (default: /run/zonewall/flowlog.sock, flowlog-NAME.sock with --netns NAME); empty disables the flow log.", valueName: "PATH"))
    var flowLogSocket: String?

    @Option(help: ArgumentHelp("Where the top denied pairs of the last hour are written for `zonewall status` (default: /run/zonewall/flows.json, flows-NAME.json with --netns NAME).", valueName: "PATH"))
    var flowSummaryFile: String?

    func validate() throws {
        guard resyncInterval > 0 else { throw ValidationError("--resync-interval must be positive") }
        if let m = metricsAddress, Self.parseAddress(m) == nil {
            throw ValidationError("--metrics-address must be HOST:PORT, e.g. 127.0.0.1:9715 or [::1]:9715")
        }
    }

    static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func run() async throws {
        let format = logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(label: label)
            case .text: return StreamLogHandler.standardError(label: label)
            }
        }
        let logger = Logger(label: "zonewall")
        let kernel = try withKernelErrors("opening netlink") { try kernelOptions.openKernel() }
        var configuration = DaemonConfiguration(
            policyDirectory: options.policies,
            stateFile: stateFile.isEmpty ? nil : stateFile,
            resyncInterval: .milliseconds(Int64(resyncInterval * 1000)),
            removeOnExit: removeOnExit,
            metricsAddress: metricsAddress.flatMap(Self.parseAddress)
        )
        let socket = flowLogSocket ?? FlowStreamServer.defaultPath(netns: kernelOptions.netns)
        if !socket.isEmpty {
            let summary = flowSummaryFile ?? FlowLogConfiguration.defaultSummaryFile(netns: kernelOptions.netns)
            configuration.flowLog = FlowLogConfiguration(namespace: kernelOptions.netns, socketPath: socket,
                                                         summaryFile: summary.isEmpty ? nil : summary)
        }
        let daemon = ZonewallDaemon(kernel: kernel, configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: daemon)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch let refused as StartupRefused {
            printError(refused.description)
            throw ExitCode(1)
        } catch {
            printError("zonewall: \(error)")
            throw ExitCode(2)
        }
    }
}
