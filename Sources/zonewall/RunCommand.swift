import ArgumentParser
import Conntrack
import Daemon
import FlowLog
import Foundation
import HostScope
import Logging
import Membership
import Netfilter
import Reconciler
import Ruleset
import ServiceLifecycle
import SocketDiag
import ZonePolicy

/// `zonewall run`: the reconciling daemon.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: enforce the policy, reload on edits and SIGHUP, repair drift.",
        discussion: """
            SIGTERM and SIGINT stop the daemon and leave the rules in force (fail-closed); \
            --remove-on-exit deletes the table instead. An invalid policy at start keeps an \
            existing table in force; with no table, the daemon refuses to start (exit 1).
            """
    )

    enum LogFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions
    @OptionGroup var permissions: PermissionOptions

    @Option(help: ArgumentHelp(
        "State file that `zonewall status` reads; \"\" writes none.",
        discussion: "Default: /run/zonewall/state-NETNS-HASH.json, one per namespace and policy directory."))
    var stateFile: String?

    @Option(help: "Seconds between full resyncs of the kernel table (the backstop to drift events).")
    var resyncInterval: Double = 60

    @Option(help: "Log format: text or json (one object per line).")
    var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Serve Prometheus metrics on this loopback address, e.g. 127.0.0.1:9715.", valueName: "HOST:PORT"))
    var metricsAddress: String?

    @Flag(help: "Delete table inet zonewall on SIGTERM/SIGINT instead of leaving it in force.")
    var removeOnExit = false

    @Option(help: ArgumentHelp(
        "Every policy edit the daemon applies must be confirmed with `zonewall confirm` within DURATION (e.g. 60s; 1 s to 24 h), "
            + "or the daemon goes back to the last confirmed policy and keeps it.",
        discussion: "The files are left as they are; status says the edit was reverted. The next edit starts a new "
            + "window. Drift repair never needs confirmation.",
        valueName: "DURATION"))
    var confirmEdits: ConfirmDuration?

    @Flag(help: ArgumentHelp("Create the table owned by the daemon's netlink socket: other processes get EPERM changing it. With 'persist' on Linux 6.9+, it outlives the daemon, and a restarted daemon adopts it.",
                             discussion: "Root can still delete the table through a new socket once the owner is gone."))
    var ownTable = false

    @Option(help: ArgumentHelp("The flow log socket that `zonewall log` reads (default: /run/zonewall/flowlog-ns-DEV-INODE.sock, named by the network namespace's identity); empty disables the flow log.", valueName: "PATH"))
    var flowLogSocket: String?

    @Option(help: ArgumentHelp("Where the top denied pairs of the last hour are written for `zonewall status` (default: /run/zonewall/flows-ns-DEV-INODE-HASH.json, by the namespace's identity and the policy directory, as the state file).", valueName: "PATH"))
    var flowSummaryFile: String?

    @OptionGroup(title: "Members from etcd") var etcd: EtcdOptions
    @OptionGroup var scopeOptions: ScopeOptions

    @Option(help: ArgumentHelp("Directory for state that survives restarts: the last known etcd members (env ZONEWALL_STATE_DIRECTORY).", valueName: "DIR"))
    var stateDirectory: String = ProcessInfo.processInfo.environment["ZONEWALL_STATE_DIRECTORY"] ?? "/var/lib/zonewall"

    func validate() throws {
        // A full read of the kernel's table each time: below a second it keeps a core busy.
        guard resyncInterval.isFinite, (1...86_400).contains(resyncInterval) else {
            throw ValidationError("--resync-interval must be a number of seconds from 1 to 86400 (a day)")
        }
        if let m = metricsAddress {
            guard let (host, _) = Self.parseAddress(m) else {
                throw ValidationError("--metrics-address must be HOST:PORT, e.g. 127.0.0.1:9715 or [::1]:9715")
            }
            // The metrics say what the firewall allows: they are served on loopback only.
            guard host == "localhost" || host == "::1" || (IPPrefix.parse(host).map { $0.family == .ipv4 && $0.address >> 24 == 127 } ?? false) else {
                throw ValidationError("--metrics-address \(m) is not a loopback address: metrics are served on 127.0.0.1, ::1 or localhost only")
            }
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
        // A daemon whose log reader went away keeps enforcing: writes to a closed pipe fail
        // (and are dropped) instead of killing the process between two commits.
        signal(SIGPIPE, SIG_IGN)
        if let strict = permissions.strictModes {
            // Refused before the kernel is opened: an insecure policy never touches it, even
            // when a table is in force (the reconciler would keep that one).
            // A missing directory is the loader's to report ("policy directory does not exist"), as
            // for apply: the daemon then keeps a table in force, or refuses to start without one.
            var insecure = FileManager.default.fileExists(atPath: options.policies) ? strict.check(policyDirectory: options.policies) : []
            // Where the daemon writes what status shows and what a restart reads back (the etcd member cache).
            let written = [kernelOptions.stateFile(stateFile, policies: options.policies),
                           stateDirectory.isEmpty ? nil : stateDirectory + "/etcd-members.json"].compactMap { $0 }
            for path in written { insecure += strict.check(stateFile: path) }
            if !insecure.isEmpty {
                for d in insecure { printError(d.description) }
                printError("zonewall: the policy or the daemon's state can be changed by users other than root; refusing to start")
                throw ExitCode(1)
            }
        }
        var configuration = DaemonConfiguration(
            // Absolute: the state and a pending window record it, and status compares it from anywhere.
            policyDirectory: options.absolutePolicies,
            stateFile: kernelOptions.stateFile(stateFile, policies: options.policies),
            resyncInterval: .milliseconds(Int64(resyncInterval * 1000)),
            removeOnExit: removeOnExit,
            metricsAddress: metricsAddress.flatMap(Self.parseAddress)
        )
        configuration.insecurePermissions = permissions.insecurePermissions
        configuration.dropCapabilities = true
        let lock = try kernelOptions.lockNamespace(holder: "zonewall run, policies \(StateFile.canonicalDirectory(options.policies))")
        defer { withExtendedLifetime(lock) {} }
        // Only an apply's guard: the lock above already refused a daemon with a window of its own.
        try kernelOptions.refuseWhileConfirmationPending("start", owners: [.apply])
        let kernel = try withKernelErrors("opening netlink") { try kernelOptions.openKernel() }
        // Revocation needs ctnetlink; a kernel without it still gets its rule set enforced.
        let conntrack: NetlinkConntrack?
        do { conntrack = try NetlinkConntrack(namespace: kernelOptions.netns) } catch {
            logger.error("cannot open ctnetlink; established flows will not be revoked", metadata: ["error": "\(error)"])
            conntrack = nil
        }
        // Owners of local sockets (sock_diag): without them, revocation judges local ends by every zone they could be in.
        let sockets: NetlinkSockets?
        do { sockets = try NetlinkSockets(namespace: kernelOptions.netns) } catch {
            logger.warning("cannot open sock_diag; flows of local units, cgroups and users are revoked only where every zone they could belong to denies them",
                           metadata: ["error": "\(error)"])
            sockets = nil
        }
        configuration.confirmEdits = confirmEdits?.seconds
        configuration.netns = kernelOptions.netns
        if ownTable { configuration.tableFlags = NetlinkKernel.ownedTableFlags }
        let socket = flowLogSocket ?? FlowStreamServer.defaultPath(netns: kernelOptions.netns)
        if !socket.isEmpty {
            let summary = flowSummaryFile ?? FlowLogConfiguration.defaultSummaryFile(netns: kernelOptions.netns, policyDirectory: options.policies)
            configuration.flowLog = FlowLogConfiguration(namespace: kernelOptions.netns, socketPath: socket,
                                                         summaryFile: summary.isEmpty ? nil : summary)
        }
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
        let daemon = ZonewallDaemon(kernel: kernel, conntrack: conntrack, sockets: sockets, configuration: configuration, logger: logger)
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
        } catch let metrics as MetricsUnavailable {
            printError("zonewall: \(metrics)")
            throw ExitCode(1)
        } catch {
            printError("zonewall: \(error)")
            if let e = error as? any KernelFailure, e.errno == EPERM || e.errno == EACCES { printError(permissionHint(errno: e.errno)) }
            throw ExitCode(2)
        }
    }
}
