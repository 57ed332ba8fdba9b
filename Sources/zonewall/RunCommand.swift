import ArgumentParser
import Daemon
import Foundation
import Logging
import HostScope
import Membership
import Reconciler
import ZonePolicy
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

    @OptionGroup(title: "Members from etcd") var etcd: EtcdOptions
    @OptionGroup var scopeOptions: ScopeOptions

    @Option(help: ArgumentHelp("Directory for state that survives restarts: the last known etcd members (env ZONEWALL_STATE_DIRECTORY).", valueName: "DIR"))
    var stateDirectory: String = ProcessInfo.processInfo.environment["ZONEWALL_STATE_DIRECTORY"] ?? "/var/lib/zonewall"

    func validate() throws {
        guard resyncInterval > 0 else { throw ValidationError("--resync-interval must be positive") }
        if let m = metricsAddress, Self.parseAddress(m) == nil {
            throw ValidationError("--metrics-address must be HOST:PORT, e.g. 127.0.0.1:9715 or [::1]:9715")
        }
        _ = try etcd.configuration()
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
        var etcdClient: EtcdClient?
        if let etcdConfig = try etcd.configuration() {
            let client = try EtcdClient(etcdConfig)
            etcdClient = client
            configuration.memberSource = EtcdMemberSource(client: client, logger: logger)
            configuration.memberPrefix = etcdConfig.prefix
            configuration.memberCache = stateDirectory.isEmpty ? nil : stateDirectory + "/etcd-members.json"
        }
        if scopeOptions.scope == .local {
            configuration.hostAddresses = scopeOptions.hostAddresses.isEmpty
                ? RtnetlinkAddresses(namespace: kernelOptions.netns) as any HostAddressSource
                : InMemoryHostAddresses(scopeOptions.hostAddresses.compactMap(IPPrefix.parse))
        }
        let daemon = ZonewallDaemon(kernel: kernel, configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: daemon)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
            await etcdClient?.shutdown()
        } catch let refused as StartupRefused {
            printError(refused.description)
            throw ExitCode(1)
        } catch {
            printError("zonewall: \(error)")
            throw ExitCode(2)
        }
    }
}
