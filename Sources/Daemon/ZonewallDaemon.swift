import HostIdentity
import Foundation
import Logging
import Reconciler
import Ruleset
import ServiceLifecycle
import UnixSignals

/// How `zonewall run` behaves.
public struct DaemonConfiguration: Sendable {
    public var policyDirectory: String
    /// Where the state is written atomically for `zonewall status`; nil disables it.
    public var stateFile: String?
    /// The backstop full resync period.
    public var resyncInterval: Duration
    /// Quiet time that ends a burst of file events before one reload.
    public var debounce: Duration = .milliseconds(15)
    /// A burst never delays a reload longer than this.
    public var maxDebounce: Duration = .milliseconds(200)
    /// Delete the table on SIGTERM/SIGINT instead of leaving it in force.
    public var removeOnExit: Bool
    /// `127.0.0.1:9715`-style loopback address for Prometheus metrics; nil disables them.
    public var metricsAddress: (host: String, port: Int)?
    /// The network namespace governed (`--netns`), recorded in the state; nil for the daemon's own.
    public var namespace: String? = nil

    public init(policyDirectory: String, stateFile: String?, resyncInterval: Duration, removeOnExit: Bool,
                metricsAddress: (host: String, port: Int)?) {
        self.policyDirectory = policyDirectory
        self.stateFile = stateFile
        self.resyncInterval = resyncInterval
        self.removeOnExit = removeOnExit
        self.metricsAddress = metricsAddress
    }
}

/// `zonewall run`: watch, reconcile, repair, until told to stop.
///
/// A `Service` for swift-service-lifecycle: SIGTERM/SIGINT trigger graceful shutdown, which
/// leaves the rules in force (fail-closed) unless `removeOnExit`.
public final class ZonewallDaemon: Service, @unchecked Sendable {
    let kernel: any KernelRuleset
    let config: DaemonConfiguration
    let logger: Logger
    let notifier = SystemdNotifier()
    public let metrics = DaemonMetrics()

    public init(kernel: any KernelRuleset, configuration: DaemonConfiguration, logger: Logger) {
        self.kernel = kernel
        self.config = configuration
        self.logger = logger
    }

    public func run() async throws {
        let stateFile = config.stateFile.map(StateFile.init(path:))
        let metrics = self.metrics
        let logger = self.logger
        let reconciler = Reconciler(kernel: kernel, policyDirectory: config.policyDirectory, namespace: config.namespace, logger: logger) { state in
            metrics.update(state)
            do { try stateFile?.write(state) } catch { logger.warning("cannot write state file", metadata: ["error": "\(error)"]) }
        }
        let watcher = try PolicyWatcher(directory: config.policyDirectory)
        watcher.start()
        defer { watcher.stop() }

        let cgroups = CgroupWatcher.current()
        if let cgroups { await reconciler.setHostResolver { IdentityFollower.facts(for: $0, source: cgroups) } }
        try await reconciler.start()
        // Units and cgroups are resolved now and followed as they come and go (element changes
        // only); users are resolved again whenever the policy is reloaded, SIGHUP included.
        let follower = cgroups.map { IdentityFollower(source: $0, reconciler: reconciler, logger: logger) }
        await follower?.follow()
        // Subscribe only now: while anyone listens, the kernel announces every element of a
        // commit, and a cold start commits the whole table (half a million elements at scale).
        // A change between the start and the subscription shows as a moved generation.
        let events = try kernel.events()
        await reconciler.resyncIfMoved()
        let startState = await reconciler.state
        notifier.notify("READY=1", "STATUS=\(Self.summary(startState))")
        logger.info("zonewall running", metadata: ["policies": "\(config.policyDirectory)", "digest": "\(startState.policyDigest ?? "-")"])

        var server: MetricsServer?
        if let address = config.metricsAddress {
            server = try await MetricsServer(host: address.host, port: address.port) { metrics.render() }
            logger.info("metrics on http://\(address.host):\(address.port)/metrics")
        }

        let (kicks, kick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let pending = PendingReload()
        let config = self.config
        let notifier = self.notifier

        await withTaskGroup(of: Void.self) { group in
            // Drift: foreign changes to our table, and lost events.
            group.addTask {
                do {
                    for try await event in events { await reconciler.handle(event) }
                } catch {
                    logger.error("kernel event subscription failed; relying on periodic resync", metadata: ["error": "\(error)"])
                }
            }
            // Policy edits: collect a burst, then reload once.
            group.addTask {
                for await reason in watcher.changes {
                    await pending.note(reason)
                    kick.yield()
                }
            }
            group.addTask {
                for await _ in kicks {
                    let reasons = await pending.settle(quiet: config.debounce, atMost: config.maxDebounce)
                    guard !reasons.isEmpty else { continue }
                    notifier.notify("RELOADING=1")
                    await reconciler.reload(reasons.joined(separator: ", "))
                    await follower?.follow()
                    notifier.notify("READY=1", "STATUS=\(Self.summary(await reconciler.state))")
                }
            }
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    await pending.note("SIGHUP")
                    kick.yield()
                }
            }
            // The backstop: a full read of the kernel every interval.
            group.addTask {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: config.resyncInterval) } catch { return }
                    await reconciler.resync(.resync("periodic"))
                }
            }
            if let interval = notifier.watchdogInterval {
                group.addTask {
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: interval / 2) } catch { return }
                        notifier.notify("WATCHDOG=1")
                    }
                }
            }
            try? await gracefulShutdown()
            notifier.notify("STOPPING=1")
            events.cancel()
            watcher.stop()
            await follower?.stop()
            kick.finish()
            group.cancelAll()
        }
        await server?.close()

        if config.removeOnExit {
            do {
                try kernel.apply(Transaction(family: .inet, table: "zonewall", changes: [.addTable, .deleteTable]), expectingGeneration: nil)
                logger.info("removed table inet zonewall (--remove-on-exit)")
            } catch {
                logger.error("could not remove table inet zonewall", metadata: ["error": "\(error)"])
            }
        } else {
            logger.info("stopping; rules stay in force")
        }
    }

    static func summary(_ s: ReconcilerState) -> String {
        var text = "enforcing \(s.zones) zones, \(s.rules) rules, digest \(s.policyDigest ?? "-")"
        if let e = s.lastError { text += "; last error: \(e)" }
        return text
    }
}

/// Collects the reasons of a burst of file events and waits for it to settle.
actor PendingReload {
    private var reasons: [String] = []
    private var first: ContinuousClock.Instant?
    private var last: ContinuousClock.Instant?

    func note(_ reason: String) {
        let now = ContinuousClock.now
        if first == nil { first = now }
        last = now
        if !reasons.contains(reason) { reasons.append(reason) }
    }

    /// Waits until no event came for `quiet`, or `atMost` passed since the first, then takes the reasons.
    func settle(quiet: Duration, atMost: Duration) async -> [String] {
        while let first, let last {
            let now = ContinuousClock.now
            if now - last >= quiet || now - first >= atMost { break }
            try? await Task.sleep(for: min(quiet - (now - last), atMost - (now - first)))
        }
        defer { reasons = []; first = nil; last = nil }
        return reasons
    }
}
