import HostIdentity
import Foundation
import HostScope
import Logging
import Membership
import Synchronization
import ZonePolicy
import Reconciler
import Revocation
import ZonePolicy
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
    /// `--confirm-edits`: seconds an applied edit waits for `zonewall confirm`; nil: no windows.
    public var confirmEdits: TimeInterval?
    /// The namespace governed (`--netns`), nil for the daemon's own: recorded in the state and,
    /// with the policy directory, naming the pending-confirmation file `zonewall confirm` removes.
    public var netns: String?
    /// The table's flags: `[.owner, .persist]` for `--own-table`, none by default.
    public var tableFlags: TableFlags = []
    /// Skip the StrictModes check of the policy's permissions (tests only).
    public var insecurePermissions = false
    /// Once started, keep only `CAP_NET_ADMIN` (`zonewall run`; off for in-process tests,
    /// which must not strip the test runner).
    public var dropCapabilities = false
    /// The flow log of denied and audited packets (NFLOG); nil disables it.
    public var flowLog: FlowLogConfiguration? = nil
    /// Zone members from outside the policy files (etcd); nil: files only.
    public var memberSource: (any MemberSource)? = nil
    /// The key prefix of `memberSource`, for naming keys.
    public var memberPrefix: String = "/zonewall/members/"
    /// How long a start without cached members waits for the source's first list.
    public var firstListWait: Duration = .seconds(3)
    /// Where the last known members are kept, so a restart while the source is down starts with them.
    public var memberCache: String? = nil
    /// `--scope local`: this host's addresses, followed; nil is `--scope all`.
    public var hostAddresses: (any HostAddressSource)? = nil
    /// Where READY, STATUS and WATCHDOG go: systemd's `$NOTIFY_SOCKET` by default.
    public var notifier = SystemdNotifier()

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
    var notifier: SystemdNotifier { config.notifier }
    public let metrics = DaemonMetrics()
    /// Where established flows that lose permission are revoked; nil: never.
    let conntrack: (any ConntrackTable)?
    let sockets: (any SocketTable)?

    public init(kernel: any KernelRuleset, conntrack: (any ConntrackTable)? = nil, sockets: (any SocketTable)? = nil, configuration: DaemonConfiguration, logger: Logger) {
        self.kernel = kernel
        self.conntrack = conntrack
        self.sockets = sockets
        self.config = configuration
        self.logger = logger
    }

    public func run() async throws {
        let stateFile = config.stateFile.map(StateFile.init(path:))
        let metrics = self.metrics
        let logger = self.logger
        let reconciler = Reconciler(kernel: kernel, policyDirectory: config.policyDirectory, namespace: config.netns, logger: logger,
                                    conntrack: conntrack, sockets: sockets, confirmEdits: config.confirmEdits, tableFlags: config.tableFlags,
                                    strictModes: config.insecurePermissions ? nil : .system) { state in
            metrics.update(state)
            do { try stateFile?.write(state) } catch { logger.warning("cannot write state file", metadata: ["error": "\(error)"]) }
        }
        // Bound before the kernel is touched: a port already taken ends the start with exit 1
        // and the namespace's table as it was.
        var server: MetricsServer?
        if let address = config.metricsAddress {
            do {
                server = try await MetricsServer(host: address.host, port: address.port) { metrics.render() }
            } catch {
                throw MetricsUnavailable(address: "\(address.host):\(address.port)", error: error)
            }
            let host = address.host.contains(":") ? "[\(address.host)]" : address.host
            // The port bound, which port 0 leaves to the kernel.
            logger.info("metrics on http://\(host):\(server?.port ?? address.port)/metrics")
        }
        let watcher = try PolicyWatcher(directory: config.policyDirectory)
        watcher.start()
        defer { watcher.stop() }

        // A reload parses only the files whose content changed.
        await reconciler.setParseCache(ParseCache())
        let cgroups = CgroupWatcher.current()
        if let cgroups { await reconciler.setHostResolver { IdentityFollower.facts(for: $0, source: cgroups) } }
        // Reloads are asked for through `kick`, with their reasons in `pending`, by the tasks below.
        let (kicks, kick) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let pending = PendingReload()
        let members = try await startMembers(reconciler)
        // Members from etcd: a change reloads at once, without waiting for quiet; changes that
        // arrive while a reload runs are taken together by the next one. Followed from before
        // the first commit: with no member cache (a first start, a lost state directory), the
        // first list is waited for, up to `firstListWait`, so that the start does not commit
        // the files alone and revoke the flows of every registered member.
        let listed = LostFlag()
        let memberEvents: Task<Void, Never>? = members.map { feed, source in
            Task {
                for await event in source.events() {
                    switch event {
                    case .resynced, .lost: listed.value.store(true, ordering: .relaxed)
                    default: break
                    }
                    let (changed, health) = feed.apply(event)
                    if health { await reconciler.setMemberSource(feed.status) }
                    guard changed else { continue }
                    await pending.note(PendingReload.etcd, settles: false)
                    kick.yield()
                }
            }
        }
        defer { memberEvents?.cancel() }
        if let (feed, _) = members, feed.table.members.isEmpty {
            let deadline = ContinuousClock.now + config.firstListWait
            while !listed.value.load(ordering: .relaxed), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            if !listed.value.load(ordering: .relaxed) {
                logger.warning("no member cache and no list from etcd within \(config.firstListWait); starting with the policy files' members")
            }
        }
        let scope = try await startScope(reconciler, members: members?.0)
        await reconciler.describeRun(scope: config.hostAddresses == nil ? "all" : "local", ownedTable: !config.tableFlags.isEmpty,
                                     memberCache: config.memberSource == nil ? nil : config.memberCache.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        try await reconciler.start()
        // The first merge may have ignored cached members (a zone gone from the files): show
        // them now, not at the first reload, which waits for etcd when it is down.
        if let (feed, _) = members { await reconciler.setMemberSource(feed.status) }
        // Units and cgroups are resolved now and followed as they come and go (element changes
        // only); users are resolved again whenever the policy is reloaded, SIGHUP included.
        let follower = cgroups.map { IdentityFollower(source: $0, reconciler: reconciler, logger: logger) }
        await follower?.follow()
        // Subscribe only now: while anyone listens, the kernel announces every element of a
        // commit, and a cold start commits the whole table (half a million elements at scale).
        // A change between the start and the subscription shows as a moved generation.
        let events = try kernel.events()
        await reconciler.resyncIfMoved()

        // Opened before the capabilities are dropped: binding inside --netns needs CAP_SYS_ADMIN.
        var flowLog: FlowLogService?
        if let flowConfig = config.flowLog {
            do {
                flowLog = try FlowLogService(configuration: flowConfig, policy: await reconciler.policyInForce,
                                             policyDirectory: config.policyDirectory,
                                             registry: metrics.registry, logger: logger)
                logger.info("flow log: NFLOG group \(flowLog!.group), stream on \(flowConfig.socketPath)")
            } catch {
                logger.warning("flow log disabled", metadata: ["error": "\(error)"])
            }
        }
        let flows = flowLog
        // The host's addresses are followed from here on (the subscription opens its sockets now).
        let addressEvents = scope.map { $0.1.events() }
        if config.dropCapabilities {
            // Every socket that needed more is open now (setns into --netns needs CAP_SYS_ADMIN).
            try Privileges.keepOnlyNetAdmin()
            let caps = Privileges.capabilities()
            logger.info("capabilities dropped to CAP_NET_ADMIN", metadata: [
                "effective": "\(String(caps?.effective ?? 0, radix: 16))", "permitted": "\(String(caps?.permitted ?? 0, radix: 16))"])
        }
        // Ready only once the metrics are served and the capabilities dropped.
        let startState = await reconciler.state
        notifier.notify("READY=1", "STATUS=\(Self.summary(startState))")
        logger.info("zonewall running", metadata: ["policies": "\(config.policyDirectory)", "digest": "\(startState.policyDigest ?? "-")"])


        let memberCache = config.memberCache.map(MemberCache.init(path:))
        let (flowPolicyStream, flowPolicies) = AsyncStream<Policy>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let config = self.config
        let notifier = self.notifier

        // `--netns NAME`: the namespace entered at start. If NAME is deleted (or made to name
        // another namespace), this daemon would go on governing an orphan no one can reach.
        let namespaceID = config.netns.flatMap { NamespaceLock.identity(namespace: $0) }
        let namespaceLost = LostFlag()
        await withTaskGroup(of: Void.self) { group in
            if let netns = config.netns, let namespaceID {
                group.addTask {
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: .seconds(1)) } catch { return }
                        guard NamespaceLock.identity(namespace: netns) != namespaceID else { continue }
                        logger.error("network namespace \(netns) was deleted or now names another namespace; stopping: the rule set this daemon governs can no longer be reached")
                        namespaceLost.value.store(true, ordering: .relaxed)
                        kill(getpid(), SIGTERM)
                        return
                    }
                }
            }
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
                    let filesChanged = !reasons.allSatisfy(PendingReload.outsideFiles.contains)
                    await reconciler.reload(reasons.joined(separator: ", "), filesChanged: filesChanged)
                    if flows != nil, let policy = await reconciler.policyInForce { flowPolicies.yield(policy) }
                    await follower?.follow()
                    if let (feed, _) = members {
                        // The merge may have found keys to ignore (unknown zone, address taken).
                        await reconciler.setMemberSource(feed.status)
                        // Once per batch, after the commit: a burst of puts writes the cache once.
                        if feed.takeUnsaved() {
                            do { try memberCache?.write(feed.table) } catch {
                                logger.warning("cannot write the member cache", metadata: ["error": "\(error)"])
                            }
                        }
                    }
                    notifier.notify("READY=1", "STATUS=\(Self.summary(await reconciler.state))")
                }
            }
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    await pending.note("SIGHUP")
                    kick.yield()
                }
            }
            if config.confirmEdits != nil {
                let store = ConfirmationStore(netns: config.netns, policyDirectory: config.policyDirectory)
                if let stale = store.pending(), stale.owner == .daemon, stale.pid != getpid(), kill(stale.pid, 0) != 0 {
                    // Killed (or crashed) inside a window: what it would have gone back to died with it.
                    logger.error("a daemon died during a confirmation window: its edit was never confirmed, and the policy it would have gone back to is lost; confirm the policy in force, or put the files back",
                                 metadata: ["pid": "\(stale.pid)"])
                    store.record("the daemon (pid \(stale.pid)) died during a confirmation window at \(ISO8601DateFormatter().string(from: Date())); "
                                 + "its unconfirmed edit was not reverted")
                    store.cancel()
                }
                group.addTask { await Self.watchConfirmations(reconciler, store: store, config: config) }
            }
            // --scope local: the host's addresses decide which zones are local.
            if let addresses = scope?.0, let addressEvents {
                group.addTask {
                    for await event in addressEvents {
                        guard addresses.apply(event) else { continue }
                        logger.info("host addresses changed; recompiling the scope", metadata: ["event": "\(event)"])
                        await pending.note(PendingReload.hostAddresses, settles: false)
                        kick.yield()
                    }
                }
            }
            // The backstop: a full read of the kernel every interval, and sooner while the last
            // commit failed (another process held the table, say, and then let it go without an
            // event): 0.5 s, then twice as long each time, up to the interval.
            group.addTask {
                let tick = Duration.milliseconds(500)
                var resync = RetryClock(first: tick, cap: config.resyncInterval)
                var reread = RetryClock(first: tick, cap: config.resyncInterval)
                while !Task.isCancelled {
                    do { try await Task.sleep(for: tick) } catch { return }
                    // A policy file the system could not read (too many open files): read again.
                    if reread.advance(by: tick, failing: await reconciler.rereadPending, otherwise: nil) {
                        await pending.note("retry: a policy file could not be read")
                        kick.yield()
                    }
                    let failing = await !reconciler.state.inSync
                    guard resync.advance(by: tick, failing: failing, otherwise: config.resyncInterval) else { continue }
                    await reconciler.resync(.resync(failing ? "retry after a failed commit" : "periodic"))
                }
            }
            if let flows {
                group.addTask { await flows.run() }
                // The flow log's classifier follows the policy in force, beside the reloads, so
                // that rebuilding it never delays the next commit.
                group.addTask { for await policy in flowPolicyStream { flows.policyChanged(policy) } }
            }
            if let interval = notifier.watchdogInterval {
                group.addTask {
                    // A ping per half period, each only once the reconciler has answered: a
                    // reconciler stuck in a kernel call lets the period lapse, and systemd
                    // restarts the daemon. (A timer alone would keep a hung daemon "alive".)
                    while !Task.isCancelled {
                        do { try await Task.sleep(for: interval / 2) } catch { return }
                        await reconciler.probeLiveness()
                        if Task.isCancelled { return }
                        notifier.notify("WATCHDOG=1")
                    }
                }
            }
            try? await gracefulShutdown()
            notifier.notify("STOPPING=1")
            events.cancel()
            flows?.stop()
            watcher.stop()
            await follower?.stop()
            kick.finish()
            flowPolicies.finish()
            group.cancelAll()
        }
        await server?.close()

        // An unconfirmed edit does not outlive its daemon: a stop (systemd restart, reboot) during
        // a window puts the confirmed policy back first, as its deadline would have.
        if config.confirmEdits != nil, await reconciler.confirmationDeadline != nil {
            let store = ConfirmationStore(netns: config.netns, policyDirectory: config.policyDirectory)
            if store.claim() {
                await reconciler.revertUnconfirmed()
                store.record("reverted at \(ISO8601DateFormatter().string(from: Date())) by the daemon as it stopped: the edit was not "
                             + "confirmed; the last confirmed policy is in force, the policy files are unchanged")
            }
        }
        if config.removeOnExit {
            do {
                try kernel.apply(Transaction(family: .inet, table: "zonewall", changes: [.addTable, .deleteTable]), expectingGeneration: nil)
                logger.info("removed table inet zonewall (--remove-on-exit)")
            } catch {
                logger.error("could not remove table inet zonewall", metadata: ["error": "\(error)"])
            }
        } else if !namespaceLost.value.load(ordering: .relaxed) {
            logger.info("stopping; rules stay in force")
        }
        if namespaceLost.value.load(ordering: .relaxed), let netns = config.netns { throw NamespaceLost(name: netns) }
    }

    /// Publishes each new window as a pending-confirmation file; its removal (`zonewall
    /// confirm`) confirms; at the deadline, claiming the file first, the edit is reverted.
    static func watchConfirmations(_ reconciler: Reconciler, store: ConfirmationStore, config: DaemonConfiguration) async {
        var published: Date?
        while !Task.isCancelled {
            do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
            let deadline = await reconciler.confirmationDeadline
            if deadline != published {
                if let deadline {
                    try? store.begin(PendingConfirmation(owner: .daemon, pid: getpid(), deadline: deadline, netns: config.netns,
                                                         policyDirectory: config.policyDirectory))
                } else {
                    store.cancel()
                }
                published = deadline
                continue
            }
            guard let deadline else { continue }
            if store.pending() == nil {
                await reconciler.confirmPending()
                published = nil
            } else if Date() >= deadline, store.claim() {
                await reconciler.revertUnconfirmed()
                store.record("reverted at \(ISO8601DateFormatter().string(from: Date())) by the daemon: the edit was not confirmed in time; "
                             + "the last confirmed policy is in force, the policy files are unchanged")
                published = nil
            }
        }
    }

    /// Sets up `--scope local`: reads the host's addresses before the first compile, and makes
    /// every compile keep only what involves them (after the members are merged).
    private func startScope(_ reconciler: Reconciler, members: MemberFeed?) async throws -> (AddressBox, any HostAddressSource)? {
        guard let source = config.hostAddresses else { return nil }
        let box = AddressBox(HostAddresses(try source.current()))
        await reconciler.setAdjustment({ policy in
            let merged = members?.merge(into: policy) ?? policy
            return ScopeFilter.restrict(merged, toHostWith: box.sorted)
        }, table: { ScopeFilter.withoutForward($0) })
        logger.info("scope local", metadata: ["host_addresses": "\(box.sorted.map(\.description).joined(separator: " "))"])
        return (box, source)
    }

    /// Sets up the member source: the cached members are in force from the first compile.
    private func startMembers(_ reconciler: Reconciler) async throws -> (MemberFeed, any MemberSource)? {
        guard let source = config.memberSource else { return nil }
        var cached: [Member] = []
        if let path = config.memberCache {
            do { cached = try MemberCache(path: path).read(prefix: config.memberPrefix) } catch {
                logger.warning("cannot read the member cache; starting without it", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        let feed = MemberFeed(prefix: config.memberPrefix, cached: cached, logger: logger)
        if !cached.isEmpty { logger.info("starting with the last known members", metadata: ["instances": "\(cached.count)"]) }
        await reconciler.setAdjustment { feed.merge(into: $0) }
        await reconciler.setMemberSource(feed.status)
        return (feed, source)
    }

    static func summary(_ s: ReconcilerState) -> String {
        var text = "enforcing \(s.zones) zones, \(s.rules) rules, digest \(s.policyDigest ?? "-")"
        if let m = s.memberSource { text += "; \(m.kind) \(m.connected ? "connected" : "LOST (last members kept)"), \(m.instances) instances" }
        if let e = s.lastError { text += "; last error: \(e)" }
        return text
    }
}

/// Collects the reasons of a burst of events and waits for it to settle.
///
/// File events settle: an editor's save is often several events (write, rename, chmod), and
/// reading half a save would report a bogus error. Events that carry their whole change
/// (an etcd put or delete, a host address) do not wait: the reload starts at once, and what
/// arrives while it runs is taken by the next one, so a burst is coalesced into batches.
actor PendingReload {
    /// The reasons that come from outside the policy files.
    static let etcd = "etcd", hostAddresses = "host addresses"
    static let outsideFiles: Set<String> = [etcd, hostAddresses]

    private var reasons: [String] = []
    private var first: ContinuousClock.Instant?
    private var last: ContinuousClock.Instant?

    func note(_ reason: String, settles: Bool = true) {
        if !reasons.contains(reason) { reasons.append(reason) }
        guard settles else { return }
        let now = ContinuousClock.now
        if first == nil { first = now }
        last = now
    }

    /// Waits until no settling event came for `quiet`, or `atMost` passed since the first, then
    /// takes the reasons.
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

/// The host's addresses, shared by the task that follows them and the compile step.
final class AddressBox: Sendable {
    private let mutex: Mutex<HostAddresses>
    init(_ a: HostAddresses) { mutex = Mutex(a) }
    /// Applies an event; true when the addresses changed.
    func apply(_ e: HostAddressEvent) -> Bool { mutex.withLock { $0.apply(e) } }
    var sorted: [IPPrefix] { mutex.withLock { $0.sorted } }
}

/// When the backstop tries again: `first` after a failure, then twice as long after each
/// failure in a row, up to `cap`; without a failure, every `otherwise` (nil: never).
struct RetryClock {
    let first: Duration, cap: Duration
    private var wait: Duration, waited = Duration.zero

    init(first: Duration, cap: Duration) {
        self.first = first
        self.cap = cap
        wait = first
    }

    /// Time passes by `tick`; true when an attempt is due now.
    mutating func advance(by tick: Duration, failing: Bool, otherwise: Duration?) -> Bool {
        guard let due = failing ? wait : otherwise else {
            (waited, wait) = (.zero, first)
            return false
        }
        waited += tick
        guard waited >= due else { return false }
        waited = .zero
        wait = failing ? min(wait * 2, cap) : first
        return true
    }
}

/// Set by the task that watches the namespace, read once the daemon has stopped.
private final class LostFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// `run --netns NAME` stopped because NAME was deleted, or now names another namespace.
public struct NamespaceLost: Error, CustomStringConvertible {
    public let name: String
    public var description: String { "network namespace \(name) was deleted or replaced while the daemon governed it" }
}
