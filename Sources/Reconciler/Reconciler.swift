import CGlibc
import Foundation
import HostIdentity
import Logging
import Revocation
import Ruleset
import ZoneCompiler
import ZonePolicy

/// Why the reconciler is asked to act.
public enum Trigger: Sendable, Hashable, CustomStringConvertible {
    case start
    /// The policy directory changed, or SIGHUP.
    case policyChanged(String)
    /// Someone else changed the rule set (a netlink event).
    case drift
    /// The periodic full resync, or lost events (ENOBUFS).
    case resync(String)

    /// Whether acting on it repairs someone else's change rather than applying the policy.
    public var isRepair: Bool {
        switch self {
        case .drift, .resync: true
        case .start, .policyChanged: false
        }
    }

    public var description: String {
        switch self {
        case .start: "start"
        case .policyChanged(let why): "policy change (\(why))"
        case .drift: "drift"
        case .resync(let why): "resync (\(why))"
        }
    }
}

/// The outcome of one reconciliation.
public struct ReconcileOutcome: Sendable, Hashable {
    /// Changes applied; 0 when the kernel already matched.
    public var changes: Int
    /// Whether the whole table was replaced (a skeleton change) rather than edited.
    public var replacedTable: Bool
    public var duration: Duration
    /// Bytes sent to the kernel, when the kernel can tell.
    public var bytes: Int?
    /// Of `duration`: reading the base (when needed) and diffing.
    public var diffDuration: Duration = .zero
    /// Of `duration`: encoding, sending and the kernel's commit.
    public var kernelDuration: Duration = .zero
    /// Before `duration`, for a policy change: reading and validating the policy (zero when
    /// only members from outside the files changed), and compiling it.
    public var loadDuration: Duration = .zero
    public var compileDuration: Duration = .zero
}

/// Raised at start when the policy is invalid and no table exists to keep enforcing:
/// the daemon must not start fail-open.
public struct StartupRefused: Error, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public var description: String {
        (diagnostics.filter { $0.severity == .error }.map(\.description) + ["zonewall: invalid policy and no rule set in force; refusing to start"])
            .joined(separator: "\n")
    }
}

/// Keeps the kernel's `table inet zonewall` equal to the compiled policy.
///
/// It remembers what it committed, so a policy edit costs one diff against memory and one
/// transaction, not a dump. It dumps only at start, on drift and on resync. Every transaction
/// is pinned to the generation it was computed against; when someone else moved the ruleset
/// in between (`ERESTART`) it re-reads and retries.
public actor Reconciler {
    public let kernel: any KernelRuleset
    public let policyDirectory: String
    private let logger: Logger
    private let maxAttempts = 5
    /// Elements (and objects) per transaction when creating the table from nothing. 25,000 by
    /// default, half of `apply`'s: a stage's batch is in memory while it is sent, and a daemon
    /// lives with its peak (10,000 zones: 94.4 MiB at the cold start, against 96.5 MiB with
    /// 50,000; 12,500 saves no more).
    private let stageBudget: Int

    /// The last valid policy's compiled table: what must be in force.
    public private(set) var desired: Table?
    /// What the identity zones resolve to on this host (`hostChanged`).
    public private(set) var host = HostFacts()
    /// The last valid policy, kept only when it has identity zones: their elements follow the host.
    public private(set) var identityPolicy: Policy?
    /// Resolves a freshly loaded policy's identities, so that it is compiled with them from the start.
    private var hostResolver: (@Sendable (Policy) -> HostFacts)?

    /// Sets how a loaded policy's units, cgroups and users are resolved (before `start`).
    public func setHostResolver(_ resolver: @escaping @Sendable (Policy) -> HostFacts) { hostResolver = resolver }
    /// What we believe the kernel holds, and at which generation; nil means "dump first".
    private var committed: (table: Table?, generation: UInt32)?
    public private(set) var state: ReconcilerState
    /// The flags the table is created with (`--own-table`: owner, and persist where supported);
    /// part of the desired table, so a table without them is drift.
    private let tableFlags: TableFlags
    private let onStateChange: @Sendable (ReconcilerState) -> Void
    /// Where established flows are revoked after a commit that removes permission; nil: never.
    private let conntrack: (any ConntrackTable)?
    /// Where revocation finds the owner (cgroup, uid) of a flow's local socket; nil: owners unknown.
    private let sockets: (any SocketTable)?
    /// The policy behind `desired`, while revoking after its commit (its evaluator decides each
    /// entry); kept afterwards only with `confirmEdits`.
    private var desiredPolicy: Policy?
    /// The policy the kernel enforced after the last commit that applied a policy (only with
    /// `confirmEdits`): revocation then reports whether a revoked flow was allowed before.
    private var enforcedPolicy: Policy?
    /// Applied to every loaded policy before it is compiled: members from etcd, the host's scope.
    private var adjustment: @Sendable (Policy) -> Policy = { $0 }
    /// Applied to every compiled table: `--scope local` drops the forward chain.
    private var tableAdjustment: @Sendable (Table) -> Table = { $0 }
    /// Files parsed at the last load, when enabled: a reload parses only the changed ones, at
    /// the price of holding every file's parse (the daemon enables it).
    private var parseCache: ParseCache?
    /// The last valid policy as read from the files, before `adjustment`: a change that comes
    /// from outside the files (etcd members, host addresses) is compiled from it, unread.
    private var filePolicy: Policy?
    /// The last compile, which the next one starts from (`ZoneCompiler.compile(_:host:after:)`).
    private var compiled: CompiledPolicy?
    /// The policy of the compile `compiled` replaced, until the edit is committed: revocation
    /// says of each flow whether it was allowed until then.
    private var retiredPolicy: Policy?
    /// The policy the last compile compiled: the files' policy with the members from outside
    /// the files and the scope applied (nil before the first valid load).
    public var policyInForce: Policy? { compiled?.policy }
    /// Digests of the sets whose elements are unchanged since the last digest.
    private let digests = DigestCache()
    /// How the last load went, for the log line of the commit that follows it.
    private var prepared: (load: Duration, compile: Duration, kind: CompileKind)?

    /// `run --confirm-edits`: how long an applied edit waits for `zonewall confirm`; nil: no windows.
    private let confirmEdits: TimeInterval?
    /// The last confirmed table and its policy: what an unconfirmed edit goes back to.
    private var confirmed: (table: Table, policy: Policy?, counts: PolicyCounts?)?

    /// Zones, members and rules of a policy, as the state reports them.
    struct PolicyCounts {
        var zones: Int, members: Int, rules: Int
    }

    /// The counts of the policy compiled last.
    private var currentCounts: PolicyCounts { PolicyCounts(zones: state.zones, members: state.members, rules: state.rules) }
    /// When the pending edit must be confirmed by; nil when none is pending.
    public private(set) var confirmationDeadline: Date?
    /// When set, every load first checks the policy's permissions (`zonewall run`).
    private let strictModes: StrictModes?

    public init(kernel: any KernelRuleset, policyDirectory: String, namespace: String? = nil, logger: Logger, stageBudget: Int = 25_000,
                conntrack: (any ConntrackTable)? = nil, sockets: (any SocketTable)? = nil, confirmEdits: TimeInterval? = nil, tableFlags: TableFlags = [],
                strictModes: StrictModes? = nil,
                onStateChange: @escaping @Sendable (ReconcilerState) -> Void = { _ in }) {
        self.kernel = kernel
        self.confirmEdits = confirmEdits
        self.conntrack = conntrack
        self.sockets = sockets
        self.tableFlags = tableFlags
        self.strictModes = strictModes
        self.stageBudget = stageBudget
        self.policyDirectory = policyDirectory
        self.logger = logger
        self.state = ReconcilerState(policyDirectory: policyDirectory, namespace: namespace, pid: getpid())
        self.onStateChange = onStateChange
    }

    /// Loads the policy and converges. Throws `StartupRefused` when the policy is invalid and
    /// there is no table to keep enforcing; with a table in place it keeps it and reports the error.
    @discardableResult
    public func start() throws -> ReconcileOutcome? {
        defer { releaseScratch() }
        // Compile first: its scratch is released before the dump, so the two never add up.
        let loaded = loadPolicy()
        let snapshot = try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName)
        committed = (snapshot.table, snapshot.generation)
        switch loaded {
        case .success(let table):
            desired = table
            let outcome = try converge(.start)
            // Published here too: a start that adopts the table in force commits nothing, and
            // nothing else would publish the digest until the first edit.
            refreshDigest()
            publish()
            revokeIfTightened(outcome)
            // Only kept with --confirm-edits: otherwise nothing goes back to the baseline, and
            // holding it would keep the start's sets alive after every edit.
            if let confirmEdits {
                if var before = snapshot.table, let outcome, outcome.changes > 0 {
                    // The files differ from the rule set in force: edited while no daemon ran, or
                    // an edit this daemon's predecessor reverted for lack of confirmation. What
                    // the kernel held is the baseline, and the start's change needs confirming
                    // as an edit would: a restart never makes an unconfirmed edit stay.
                    before.flags = tableFlags
                    confirmed = (before, nil, nil)
                    openWindow(after: outcome, seconds: confirmEdits)
                } else {
                    confirmed = (table, desiredPolicy, currentCounts)
                }
            }
            return outcome
        case .failure(let diagnostics):
            guard var inForce = snapshot.table else { throw StartupRefused(diagnostics: diagnostics) }
            logger.error("invalid policy at start; keeping the rule set already in force", metadata: ["errors": "\(diagnostics.filter { $0.severity == .error }.count)"])
            // What is in force is what we enforce until a valid policy arrives: drift is repaired back to it.
            inForce.flags = tableFlags
            desired = inForce
            if confirmEdits != nil { confirmed = (inForce, nil, nil) }
            state.policyDigest = digests.of(inForce)
            state.elements = inForce.elementCount
            state.enforcingTableFoundAtStart = true
            state.inSync = true
            publish()
            return nil
        }
    }

    /// Keeps each file's parse between loads (or stops, with nil).
    public func setParseCache(_ cache: ParseCache?) { parseCache = cache }

    /// Sets what is done to each loaded policy before compiling (takes effect at the next load).
    public func setAdjustment(_ adjust: @escaping @Sendable (Policy) -> Policy,
                              table: @escaping @Sendable (Table) -> Table = { $0 }) {
        adjustment = adjust
        tableAdjustment = table
    }

    /// Records how the daemon runs (`--scope`, `--own-table`, where its etcd members are kept)
    /// in its state, for `status`.
    public func describeRun(scope: String, ownedTable: Bool, memberCache: String? = nil) {
        state.scope = scope
        state.ownedTable = ownedTable
        state.memberCache = memberCache
        publish()
    }

    /// Reports an outside member source's health (etcd) in the state and metrics.
    public func setMemberSource(_ status: MemberSourceStatus?) {
        guard state.memberSource != status else { return }
        state.memberSource = status
        publish()
    }

    /// Reloads the policy directory. An invalid policy keeps the last good one in force.
    /// With `filesChanged` false (only etcd members or host addresses changed) the files are
    /// not read again: the last valid policy read from them is compiled with the new members.
    @discardableResult
    public func reload(_ why: String, filesChanged: Bool = true) -> ReconcileOutcome? {
        switch loadPolicy(readFiles: filesChanged || filePolicy == nil) {
        case .success(let table):
            desired = table
            // The kernel first; the digest (every set hashed, unless unchanged) comes after the commit.
            publishing = false
            let outcome = try? converge(.policyChanged(why))
            // The policy compiled before this one: revocation says of each flow whether it was
            // allowed until now.
            let before = retiredPolicy
            retiredPolicy = nil
            publishing = true
            refreshDigest()
            publish()
            if compiled?.kind == .whole { releaseScratch() }  // the previous table is gone now
            revokeIfTightened(outcome, before: before)
            if let outcome, let confirmEdits { openWindow(after: outcome, seconds: confirmEdits) }
            return outcome
        case .failure:
            return nil
        }
    }

    /// The digest of `desired`, for status.
    private func refreshDigest() {
        if let desired { state.policyDigest = digests.of(desired) }
    }

    /// New host facts (a cgroup came or went, users re-resolved): recompiles the last valid policy
    /// against them and applies the difference, which is element changes only.
    @discardableResult
    public func hostChanged(_ facts: HostFacts, _ why: String) -> ReconcileOutcome? {
        guard facts != host else { return nil }
        host = facts
        guard let policy = identityPolicy else { return nil }
        let table = desired.flatMap { ZoneCompiler.recompileHostMaps($0, policy: policy, host: facts) }
            ?? tableAdjustment(ZoneCompiler.compile(policy, reusing: desired, host: facts))
        desired = table
        // The kernel first: what only status needs (the digest renders the whole table, the
        // state lists every cgroup) is computed and published once the change is committed.
        publishing = false
        let outcome = try? converge(.policyChanged(why))
        publishing = true
        state.policyDigest = digests.of(table)
        state.elements = table.elementCount
        state.identities = Self.describe(facts)
        state.identityCounts = Self.counts(policy, facts)
        publish()
        return outcome
    }

    /// Every identity zone of `policy` with the cgroups and uids `facts` resolve it to.
    static func counts(_ policy: Policy, _ facts: HostFacts) -> [String: IdentityCount] {
        var out: [String: IdentityCount] = [:]
        for z in policy.zones where z.isLocal {
            out[z.name] = IdentityCount(cgroups: facts.cgroups[z.name]?.count ?? 0, uids: facts.uids[z.name]?.count ?? 0)
        }
        return out
    }

    /// One line per resolved cgroup and uid, for status.
    static func describe(_ facts: HostFacts) -> [String] {
        facts.cgroups.flatMap { zone, cgs in cgs.map { "\(zone): \($0.path) (cgroup id \($0.id), level \($0.level))" } }.sorted()
            + facts.uids.flatMap { zone, uids in uids.map { "\(zone): uid \($0)" } }.sorted()
    }

    /// Re-reads and repairs the kernel only if its ruleset moved since what we last committed or
    /// read. The daemon subscribes to change events after `start`; this covers the moment in
    /// between at the price of one generation read.
    @discardableResult
    public func resyncIfMoved() -> ReconcileOutcome? {
        if let committed, let now = try? kernel.generation(), now == committed.generation { return nil }
        return resync(.resync("the ruleset changed before events were subscribed"))
    }

    /// Re-reads the kernel and repairs any difference: drift events, periodic resync, lost events.
    @discardableResult
    public func resync(_ trigger: Trigger) -> ReconcileOutcome? {
        committed = nil
        defer { releaseScratch() }
        return revokeAfterRepair(try? converge(trigger))
    }

    /// After a repair that changed the kernel: a flow that only the foreign change admitted got
    /// in while it stood, and conntrack would keep it in for as long as it lasts. Such flows are
    /// revoked as those an edit takes away are, judged by the policy in force (`compiled`, which
    /// the daemon keeps anyway).
    private func revokeAfterRepair(_ outcome: ReconcileOutcome?) -> ReconcileOutcome? {
        guard let outcome, outcome.changes > 0, let conntrack,
              let policy = enforcedPolicy ?? compiled?.policy, policy.settings.revokeEstablished else { return outcome }
        revoke(in: conntrack, new: policy, old: nil)
        return outcome
    }

    /// Reacts to a kernel change notification: repairs foreign changes to our table, ignores our
    /// own transactions (no repair loop), and follows the generation of changes elsewhere so
    /// the next transaction is not refused for a move that did not concern us.
    @discardableResult
    public func handle(_ event: KernelEvent) -> ReconcileOutcome? {
        switch event {
        case .overflow:
            logger.warning("kernel events were lost (ENOBUFS); full resync")
            return resync(.resync("lost events"))
        case .changed(let generation, let pid, let process, let touchedTable, let onlyElementsOf):
            // Netfilter reports our own commits with our pid (it matches the sending socket).
            if pid == UInt32(state.pid) { return nil }
            if touchedTable {
                logger.warning("table changed by another process", metadata: ["pid": "\(pid)", "process": "\(process ?? "?")"])
                if let sets = onlyElementsOf, let outcome = repairElements(of: sets, changedAt: generation) {
                    return revokeAfterRepair(outcome)
                }
                return resync(.drift)
            }
            if let c = committed { committed = (c.table, generation) }
            return nil
        }
    }

    /// Repairs a foreign commit that changed only elements of `names`, reading just those sets
    /// instead of the whole table: at 10,000 sets a full dump takes seconds.
    ///
    /// Only when the kernel held the desired table up to the commit before (`committed` at the
    /// generation just before `generation`). The sets are read as they are now, and the repair
    /// is pinned to `generation`: if anything else committed meanwhile, the kernel refuses it
    /// and this returns nil, as it does for any failure. The caller then does a full resync.
    func repairElements(of names: Set<String>, changedAt generation: UInt32) -> ReconcileOutcome? {
        guard let desired, let committed, state.inSync, committed.table == desired,
              generation == Ruleset.generation(after: committed.generation) else { return nil }
        let wanted = names.sorted().compactMap { desired.set(named: $0) }
        guard wanted.count == names.count else { return nil }  // a set zonewall does not have
        let clock = ContinuousClock()
        let started = clock.now
        do {
            let current = try kernel.elements(of: wanted, family: desired.family, table: desired.name)
            let tx = Transaction.elementChanges(from: current, to: wanted, family: desired.family, table: desired.name)
            let diffed = clock.now
            if !tx.isEmpty { try kernel.apply(tx, expectingGeneration: generation) }
            let applied = clock.now
            self.committed = (desired, tx.isEmpty ? generation : try kernel.generation())
            var outcome = ReconcileOutcome(changes: tx.changeCount, replacedTable: false, duration: clock.now - started,
                                           bytes: tx.isEmpty ? 0 : (kernel as? any BatchMeasuring)?.lastBatchBytes)
            outcome.diffDuration = diffed - started
            outcome.kernelDuration = applied - diffed
            if tx.isEmpty { return outcome }  // put back as it was by the same commit: nothing to do
            record(success: outcome, trigger: .drift, what: "\(tx.elementChanges) element changes in \(names.sorted().joined(separator: ", "))")
            return outcome
        } catch {
            logger.info("targeted repair not possible; full resync", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Whether the kernel holds the desired table right now (dumps it).
    public func checkInSync() throws -> Bool {
        guard let desired else { return false }
        let snapshot = try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName)
        let inSync = snapshot.table.map { $0.isEquivalent(to: desired) } ?? false
        committed = (inSync ? desired : snapshot.table, snapshot.generation)
        state.inSync = inSync
        publish()
        return inSync
    }

    /// Applies the difference between the kernel and `desired` in one transaction.
    @discardableResult
    func converge(_ trigger: Trigger) throws -> ReconcileOutcome? {
        guard let desired else { return nil }
        let clock = ContinuousClock()
        let started = clock.now
        var lastError: Error?
        for attempt in 1...maxAttempts {
            do {
                let base = try committed ?? {
                    let s = try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName)
                    return (s.table, s.generation)
                }()
                committed = base
                if base.table == nil { return try build(desired, at: base.generation, trigger: trigger, started: started) }
                let tx = Transaction.diff(from: base.table, to: desired)
                let diffed = clock.now
                if tx.isEmpty {
                    // In sync: remember the desired table itself, so that a dumped or older copy
                    // of the same content (tens of MB at scale) is not kept alongside it.
                    committed = (desired, base.generation)
                    state.inSync = true
                    // The last good rule set in force does not make the files valid: their
                    // errors stay shown until a valid policy is loaded.
                    if !policyWasInvalid {
                        state.lastError = nil
                        state.lastErrorDiagnostics = []
                        state.lastErrorAt = nil
                    }
                    publish()
                    return ReconcileOutcome(changes: 0, replacedTable: false, duration: clock.now - started, bytes: 0)
                }
                try kernel.apply(tx, expectingGeneration: base.generation)
                let applied = clock.now
                committed = (desired, try kernel.generation())
                var outcome = ReconcileOutcome(changes: tx.changeCount, replacedTable: tx.replacesTable, duration: clock.now - started,
                                               bytes: (kernel as? any BatchMeasuring)?.lastBatchBytes)
                outcome.diffDuration = diffed - started
                outcome.kernelDuration = applied - diffed
                record(success: outcome, trigger: trigger, tx: tx)
                return outcome
            } catch let e as any KernelFailure where e.isGenerationMismatch && attempt < maxAttempts {
                logger.info("ruleset changed underneath us; re-reading", metadata: ["attempt": "\(attempt)"])
                committed = nil
                lastError = e
            } catch {
                committed = nil
                lastError = error
                break
            }
        }
        let error = lastError ?? CancellationError()
        state.applyFailures += 1
        state.lastError = "apply failed (\(trigger)): \(error)"
        state.lastErrorDiagnostics = []
        state.lastErrorAt = Date()
        state.inSync = false
        logger.error("apply failed", metadata: ["reason": "\(trigger)", "error": "\(error)"])
        publish()
        throw error
    }

    /// Creates `desired` where no table exists, in stages of `stageBudget` elements
    /// (`StagePlan`): the transaction and batch in memory at any time are one stage's,
    /// not the whole table's, and the table filters nothing until its last stage hooks it in.
    private func build(_ desired: Table, at generation: UInt32, trigger: Trigger,
                       started: ContinuousClock.Instant) throws -> ReconcileOutcome {
        let clock = ContinuousClock()
        let stages = StagePlan(creating: desired, budget: stageBudget)
        let planned = clock.now
        var bytes: Int? = nil
        let measuring = kernel as? any BatchMeasuring
        let result = try kernel.build(stages, from: generation) { _, _ in
            if let measuring { bytes = (bytes ?? 0) + measuring.lastBatchBytes }
        }
        let built = clock.now
        if result.sawForeignCommits {
            // Others committed during the build, and may have changed elements of the table in
            // the making: read it all and repair, as after drift.
            committed = nil
            logger.warning("others committed while the table was being created; reading it back")
            return try converge(trigger) ?? ReconcileOutcome(changes: 0, replacedTable: true, duration: clock.now - started)
        }
        committed = (desired, result.generation)
        var outcome = ReconcileOutcome(changes: stages.changeCount, replacedTable: true,
                                       duration: clock.now - started, bytes: bytes)
        outcome.diffDuration = planned - started
        outcome.kernelDuration = built - planned
        record(success: outcome, trigger: trigger, what: "created table in \(stages.count) transactions")
        return outcome
    }

    private func record(success outcome: ReconcileOutcome, trigger: Trigger, tx: Transaction) {
        record(success: outcome, trigger: trigger, what: tx.replacesTable ? "replaced table" : "\(tx.elementChanges) element changes")
    }

    private func record(success outcome: ReconcileOutcome, trigger: Trigger, what: String) {
        let now = Date()
        state.applies += 1
        if trigger.isRepair { state.driftRepairs += 1 }
        state.lastApplyAt = now
        state.lastSuccessAt = now
        state.lastApplyReason = trigger.description
        state.lastApplyDurationSeconds = outcome.duration.seconds
        state.lastApplyChanges = outcome.changes
        // A repair puts the last good rule set back; it does not make an invalid policy valid,
        // so the policy's errors stay shown until a valid one is applied.
        if !trigger.isRepair || state.lastErrorDiagnostics.isEmpty {
            state.lastError = nil
            state.lastErrorDiagnostics = []
            state.lastErrorAt = nil
        }
        state.inSync = true
        let bytes: Logger.MetadataValue = outcome.bytes.map { "\($0)" } ?? "-"
        var extra: Logger.Metadata = [:]
        if let prepared {
            extra["load_compile_ms"] = "\(String(format: "%.2f", prepared.load.seconds * 1000))/\(String(format: "%.2f", prepared.compile.seconds * 1000))"
            extra["compile"] = "\(prepared.kind)"
            self.prepared = nil
        }
        let split: Logger.MetadataValue = "\(String(format: "%.2f", outcome.diffDuration.seconds * 1000))/\(String(format: "%.2f", outcome.kernelDuration.seconds * 1000))"
        if trigger.isRepair {
            logger.warning("repaired drift", metadata: extra.merging(["reason": "\(trigger)", "changes": "\(outcome.changes)", "what": "\(what)", "bytes": bytes, "diff_kernel_ms": split,
                                                        "duration_ms": "\(String(format: "%.2f", outcome.duration.seconds * 1000))"]) { $1 })
        } else {
            logger.info("applied", metadata: extra.merging(["reason": "\(trigger)", "changes": "\(outcome.changes)", "what": "\(what)", "bytes": bytes, "diff_kernel_ms": split,
                                              "duration_ms": "\(String(format: "%.2f", outcome.duration.seconds * 1000))"]) { $1 })
        }
        publish()
    }

    /// `--confirm-edits`: an edit that changed the kernel starts a new window (a later edit
    /// replaces the pending one's window, not its baseline); an edit back to the confirmed table
    /// needs no confirmation.
    private func openWindow(after outcome: ReconcileOutcome, seconds: TimeInterval) {
        if let confirmed, desired == confirmed.table {
            confirmationDeadline = nil
        } else if outcome.changes > 0 {
            confirmationDeadline = Date().addingTimeInterval(seconds)
            state.revertedEdit = nil
            logger.notice("edit applied; it must be confirmed with `zonewall confirm` in time",
                          metadata: ["seconds": "\(seconds)"])
        }
        state.pendingConfirmationDeadline = confirmationDeadline
        publish()
    }

    /// `zonewall confirm` arrived: the policy in force becomes the one to come back to.
    public func confirmPending() {
        guard confirmationDeadline != nil, let desired else { return }
        confirmed = (desired, desiredPolicy, currentCounts)
        confirmationDeadline = nil
        state.pendingConfirmationDeadline = nil
        logger.notice("edit confirmed")
        publish()
    }

    /// The deadline passed without a confirmation: back to the last confirmed policy, in one
    /// transaction, revoking what it denies. The files are left alone; the next edit (or
    /// SIGHUP) is a new change with a new window.
    @discardableResult
    public func revertUnconfirmed() -> ReconcileOutcome? {
        guard confirmationDeadline != nil, let confirmed else { return nil }
        confirmationDeadline = nil
        state.pendingConfirmationDeadline = nil
        desired = confirmed.table
        desiredPolicy = confirmed.policy
        defer { releaseScratch() }
        let outcome = try? converge(.policyChanged("edit not confirmed in time: back to the last confirmed policy"))
        revokeIfTightened(outcome)
        state.policyDigest = digests.of(confirmed.table)
        state.elements = confirmed.table.elementCount
        // The counts are the confirmed policy's, like the digest and the elements (unknown when
        // it was the table found at start).
        if let counts = confirmed.counts {
            (state.zones, state.members, state.rules) = (counts.zones, counts.members, counts.rules)
        }
        state.revertedEdit = "an edit was reverted at \(ISO8601DateFormatter().string(from: Date())) for lack of confirmation; "
            + "the last confirmed policy is in force, the policy files are left as they are"
        logger.warning("edit not confirmed in time; the last confirmed policy is back in force (the files are unchanged)")
        publish()
        return outcome
    }

    /// After a commit that applied a policy: deletes the conntrack entries of established flows
    /// the new policy denies (`Revocation`). A commit that changed nothing removed no permission,
    /// so it costs no scan; nor does a policy that opts out (`revoke_established: false`).
    /// Drift repair does not revoke: it restores what was already enforced.
    private func revokeIfTightened(_ outcome: ReconcileOutcome?, before: Policy? = nil) {
        // Policies are kept between edits only for --confirm-edits (its revert needs the
        // confirmed one): at 100,000 members a policy is about 10 MB the daemon need not hold.
        defer { if confirmEdits == nil { desiredPolicy = nil; enforcedPolicy = nil } }
        guard let outcome, let policy = desiredPolicy else { return }
        let previous = enforcedPolicy ?? before
        enforcedPolicy = policy
        guard let conntrack, outcome.changes > 0, policy.settings.revokeEstablished else { return }
        revoke(in: conntrack, new: policy, old: previous)
    }

    private func revoke(in conntrack: any ConntrackTable, new policy: Policy, old previous: Policy?) {
        let clock = ContinuousClock()
        let started = clock.now
        do {
            let report = try Revocation.revoke(in: conntrack, sockets: sockets, new: policy, old: previous)
            if let error = report.socketsError {
                logger.warning("cannot read the socket table; flows of local units, cgroups and users are judged without their owners",
                               metadata: ["error": "\(error)"])
            }
            for r in report.revoked {
                let (proto, port) = r.entry.protoAndPort
                state.revokedFlows = (state.revokedFlows ?? 0) + 1
                state.revokedFlowsByPair = (state.revokedFlowsByPair ?? [:]).merging(["\(r.from) \(r.to)": 1], uniquingKeysWith: +)
                logger.warning("revoked established flow", metadata: [
                    "from": "\(r.from)", "to": "\(r.to)", "proto": "\(proto)", "port": "\(port)",
                    "src": "\(r.entry.sourceText)", "dst": "\(r.entry.destinationText)",
                    "previously": "\(r.previouslyAllowed.map { $0 ? "allowed" : "denied" } ?? "unknown")",
                    "reason": "\(r.reason)",
                ])
            }
            if !report.revoked.isEmpty || report.scanned > 0 {
                logger.info("revocation scan", metadata: [
                    "scanned": "\(report.scanned)", "revoked": "\(report.revoked.count)", "deleted": "\(report.deleted)",
                    "duration_ms": "\(String(format: "%.2f", (clock.now - started).seconds * 1000))",
                ])
            }
            if !report.revoked.isEmpty { publish() }
        } catch {
            logger.error("revoking established flows failed; they keep running until they end", metadata: ["error": "\(error)"])
            state.lastError = "revoking established flows failed: \(error)"
            state.lastErrorAt = Date()
            publish()
        }
    }

    /// Whether the last load could not read the directory or a file for a reason of the
    /// system's (too many open files, an I/O error). No file event may ever come for it, so the
    /// daemon reads again on its backstop until a read succeeds.
    public private(set) var rereadPending = false

    private enum Loaded {
        case success(Table)
        case failure([Diagnostic])
    }

    /// The last read of the policy files found errors (logged); the next good read says so.
    private var policyWasInvalid = false

    private func loadPolicy(readFiles: Bool = true) -> Loaded {
        var table: Table
        let clock = ContinuousClock()
        let started = clock.now
        do {  // the policy is released at the end of this block
            // One file at a time: a daemon's peak memory matters more than a few hundred ms of reload at 10,000 zones.
            let read: Policy?, diagnostics: [Diagnostic]
            if readFiles {
                // No lints: the daemon reports errors only (`zonewall check` gives the warnings).
                let result = PolicyLoader.load(directory: policyDirectory, concurrently: false, strictModes: strictModes, cache: parseCache,
                                               warnings: false, users: UserResolver.uid)
                (read, diagnostics) = (result.policy, result.diagnostics)
                rereadPending = result.readFailed
                if let read { filePolicy = read }
            } else {
                (read, diagnostics) = (filePolicy, [])
            }
            guard let policy = read.map(adjustment) else {
                state.policyLoadErrors += 1
                let errors = diagnostics.filter { $0.severity == .error }
                policyWasInvalid = true
                state.lastError = "invalid policy: \(errors.count) error(s); keeping the last good rule set"
                state.lastErrorDiagnostics = errors.map(\.description)
                state.lastErrorAt = Date()
                for d in errors { logger.error("\(d.description)") }
                publish()
                return .failure(diagnostics)
            }
            if readFiles, policyWasInvalid {
                // The edit that broke it is fixed: say so where the errors were logged.
                logger.notice("policy valid again", metadata: ["directory": "\(policyDirectory)"])
                policyWasInvalid = false
            }
            if let hostResolver, policy.zones.contains(where: { $0.isLocal }) {
                host = hostResolver(policy)
                state.identities = Self.describe(host)
                state.identityCounts = Self.counts(policy, host)
            }
            let loaded = clock.now
            // The previous compile is handed over, not shared: what the edit rebuilds of it is
            // freed while the compile runs. The sets the kernel holds stay referenced by
            // `committed`, so none of their lists is freed before the commit.
            let previous = compiled.take()
            retiredPolicy = previous?.policy
            let next = ZoneCompiler.compile(policy, host: host, after: consume previous)
            compiled = next
            table = tableAdjustment(next.table)
            prepared = (loaded - started, clock.now - loaded, next.kind)
            identityPolicy = policy.zones.contains { $0.isLocal || !$0.interfaces.isEmpty } ? policy : nil
            if conntrack != nil { desiredPolicy = policy }
            table.flags = tableFlags
            state.enforcingTableFoundAtStart = nil
            state.zones = policy.zones.count
            state.members = policy.zones.reduce(0) { $0 + $1.members.count }
            state.rules = policy.rules.count
        }
        state.elements = table.elementCount
        return .success(table)
    }

    private func publish() { if publishing { onStateChange(state) } }

    /// False while `hostChanged` commits, which publishes once afterwards.
    private var publishing = true

    /// Parsing and compiling a large policy, or dumping a large table, leaves tens of MB of
    /// freed scratch in the heap. Hand it back, so that the daemon's resident size is what it
    /// keeps, and the next batch or dump does not stack on top of it.
    private func releaseScratch() { _ = malloc_trim(0) }

    /// Returns as soon as the reconciler is between jobs: the watchdog's liveness probe. The
    /// reconciler's kernel calls are synchronous inside the actor, so while one hangs this
    /// call does not return, and the daemon stops telling systemd it is alive.
    public func probeLiveness() {}
}

extension Transaction {
    /// Objects and elements this transaction adds or removes.
    public var changeCount: Int {
        changes.reduce(0) {
            switch $1 {
            case .addElements(_, let e), .deleteElements(_, let e): $0 + e.count
            default: $0 + 1
            }
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
