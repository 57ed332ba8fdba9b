import ArgumentParser
import Foundation
import Netfilter
import Reconciler
import Ruleset
import Synchronization
import ZoneCompiler
import ZonePolicy

/// `zonewall apply`: brings `table inet zonewall` to the compiled policy in one transaction, then verifies it.
struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply the policy to the kernel atomically and verify it (exit 1 invalid policy, 2 kernel error).",
        discussion: """
            Reads the table, sends only the element changes when the policy's shape is unchanged (or \
            replaces the whole table) as ONE batch pinned to the generation it read, retries if someone \
            else committed in between, then reads the table back and checks it equals the compiled one. \
            An invalid policy or a refused batch leaves the kernel exactly as it was.
            """
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var scopeOptions: ScopeOptions
    @OptionGroup var kernelOptions: KernelOptions
    @OptionGroup var permissions: PermissionOptions

    @Option(name: .long, help: ArgumentHelp(
        "When the table does not exist yet, create it in transactions of at most about N elements and objects each.",
        discussion: "Its hooks come in the last one, so nothing is filtered until the whole table is in place. Smaller "
            + "transactions need less memory; each one costs a commit.",
        valueName: "N"))
    var stageElements = 50_000

    @Option(name: .customLong("confirm"), help: ArgumentHelp(
        "Undo the change unless `zonewall confirm` runs within DURATION (e.g. 60s, 2m; 1 s to 24 h).",
        discussion: "A detached guard process keeps the previous table and restores it, in one transaction, at the "
            + "deadline; it survives the terminal or SSH session closing. `zonewall status` shows the deadline.",
        valueName: "DURATION"))
    var confirmWithin: ConfirmDuration?

    @Option(name: .long, help: ArgumentHelp(
        "How a new table's creation is verified: elements (default) or skeleton.",
        discussion: "elements: every set is read back (while the next stage is sent) and compared with the compiled one, "
            + "then the table's skeleton. skeleton: the table, its chains, rules and set declarations are read back and "
            + "compared, and the generation proves nobody committed since; the elements are trusted from the kernel's "
            + "acknowledgement of each message, not read back. An existing table is always verified by a full read-back.",
        valueName: "MODE"))
    var verify: VerifyMode = .elements

    enum VerifyMode: String, ExpressibleByArgument, CaseIterable {
        case elements, skeleton
    }

    /// Attempts when the ruleset generation moves under us (`ERESTART`).
    static let attempts = 5

    /// A table created from nothing in stages, each stage's sets read back while the next
    /// stage is committed.
    private struct Build {
        var stages: Int
        var generation: UInt32
        /// Others committed during the build: what the verifier read before may be stale.
        var sawForeignCommits: Bool
        var verifier: StageVerifier
    }

    func validate() throws {
        guard stageElements > 0 else { throw ValidationError("--stage-elements must be at least 1") }
    }

    func run() throws {
        let (policy, _) = try options.loadOrExit(strictModes: permissions.strictModes, changesKernel: true)
        // Units, cgroups and users as they are now; ones not found are named, and match nothing.
        let host = GatheredHostFacts.gather(policy)
        for d in host.missing { printError(d.description) }
        let desired = try withExit2 { try scopeOptions.compile(policy, netns: kernelOptions.netns, host: host.facts) }
        let lock = try kernelOptions.lockNamespace(holder: "zonewall apply, policies \(StateFile.canonicalDirectory(options.policies))")
        defer { withExtendedLifetime(lock) {} }
        try kernelOptions.refuseWhileConfirmationPending("apply")
        let window = try confirmWithin.map {
            try ConfirmWindow(netns: kernelOptions.netns, policies: options.policies, seconds: $0.seconds)
        }
        let changed = try applyAndVerify(desired)
        if let window, let within = confirmWithin {
            if changed {
                window.committed()
                // The window belongs to this namespace and policy directory: the command names both.
                print("zonewall: run `\(kernelOptions.confirmCommand(policies: options.policies))` within \(within) "
                      + "or the previous rule set comes back")
            } else {
                window.abort()
                print("zonewall: nothing changed, so there is nothing to confirm")
            }
        }
        if changed { try Revoking.afterCommit(of: policy, previous: nil, netns: kernelOptions.netns) }
    }

    /// Applies and verifies; true when the kernel's table changed.
    private func applyAndVerify(_ desired: Table) throws -> Bool {
        let start = ContinuousClock.now
        let place = kernelOptions.place(KernelSync.tableName)

        let kernel = try withKernelErrors("opening nftables") { try kernelOptions.openKernel() }
        var applied: Transaction?
        var build: Build?
        try withKernelErrors("applying to \(place)") {
            for attempt in 1...Self.attempts {
                let snapshot = try kernel.dump(family: desired.family, table: desired.name)
                do {
                    if snapshot.table == nil {
                        build = try self.build(desired, on: kernel, from: snapshot.generation)
                        return
                    }
                    var tx = KernelSync.transaction(from: snapshot.table, to: desired)
                    if tx.isEmpty { applied = tx; return }
                    FaultInjection.apply(to: &tx)
                    try kernel.apply(tx, expectingGeneration: snapshot.generation)
                    applied = tx
                    return
                } catch let e as any KernelFailure where e.isGenerationMismatch && attempt < Self.attempts {
                    continue  // someone else committed between our dump and our batch: diff again
                }
            }
        }
        let readBack = ContinuousClock.now
        if let build, try verify(build, of: desired, on: kernel) {
            print("zonewall: created \(place) in \(build.stages) transaction(s), its hooks in the last; "
                  + "\(desired.elementCount) elements, \(desired.sets.count) sets, \(desired.chains.count) chains; "
                  + "done in \(KernelSync.milliseconds(since: start)), "
                  + (verify == .elements ? "every set read back and verified while the next was sent, "
                                         : "elements acknowledged by the kernel and not read back (--verify skeleton), ")
                  + "the final check took \(KernelSync.milliseconds(since: readBack))")
            return true
        }
        let after = try withKernelErrors("reading back \(place)") {
            try kernel.dump(family: desired.family, table: desired.name).table
        }
        guard KernelSync.equivalent(after, desired) else {
            printError("zonewall: verification failed: \(place) differs from the compiled policy after apply:")
            for line in KernelSync.differences(after, desired) { printError("  \(line)") }
            throw ExitCode(2)
        }
        let tx = applied ?? Transaction(family: desired.family, table: desired.name)
        let what: String
        if let build {
            what = "created \(place) in \(build.stages) transaction(s) (verified by a full read-back: the rule set moved meanwhile)"
        } else if tx.isEmpty {
            what = "already in sync, 0 changes"
        } else if tx.replacesTable {
            what = "replaced \(place): \(tx.changes.count) changes"
        } else {
            what = "updated \(place): \(tx.changes.count) changes, \(tx.elementChanges) element(s) added or deleted"
        }
        print("zonewall: \(what); \(desired.elementCount) elements, \(desired.sets.count) sets, "
              + "\(desired.chains.count) chains; done in \(KernelSync.milliseconds(since: start)), "
              + "of which the read-back that verified it took \(KernelSync.milliseconds(since: readBack))")
        return build != nil || !tx.isEmpty
    }

    /// Creates the table where none exists, in stages (`Transaction.stages(creating:budget:)`):
    /// no batch holds the whole table, and the table filters nothing until the last stage hooks
    /// it in. A second socket reads back each stage's sets while the next stage is committed.
    /// On failure nothing is left behind (`KernelRuleset.build`).
    private func build(_ desired: Table, on kernel: NetlinkKernel, from generation: UInt32) throws -> Build {
        var stages = Transaction.stages(creating: desired, budget: stageElements)
        FaultInjection.apply(to: &stages[stages.count - 1].transaction)
        let reader = try kernelOptions.openKernel()
        // The batches keep one processor busy in the kernel; read on the others while they run,
        // and on all of them once the last stage is in: what is left to read then is the wait.
        let readers = Atomic(max(1, NetlinkKernel.usableProcessors - 1))
        let (family, name) = (desired.family, desired.name)
        let readsElements = verify == .elements
        // Large single-field interval maps are confirmed by lookups, stage by stage: the kernel
        // dumps them in quadratic time. Nobody else can have added to a set of this build (each
        // stage is pinned to the last one's generation), so the lookups see all that matters.
        let verifier = StageVerifier(desired: desired, read: { sets in
            readsElements ? try reader.elements(of: sets, family: family, table: name, readers: readers.load(ordering: .relaxed)) : []
        }, confirms: { readsElements && NetlinkKernel.prefersLookup($0) }, confirm: { elements, set in
            // All processors: the last stages' lookups are what the build waits for at its end.
            try reader.holds(elements, of: set, family: family, table: name, readers: NetlinkKernel.usableProcessors)
        })
        do {
            let result = try kernel.build(stages, from: generation) { k, _ in
                if k == stages.count - 1 { readers.store(NetlinkKernel.usableProcessors, ordering: .relaxed) }
                verifier.verify(stages[k])
            }
            return Build(stages: stages.count, generation: result.generation, sawForeignCommits: result.sawForeignCommits,
                         verifier: verifier)
        } catch {
            _ = try? verifier.finish()
            throw error
        }
    }

    /// Whether the staged build is verified: every set read back during the build equals the
    /// compiled one, nobody committed since the last stage, and the table's skeleton (chains,
    /// rules, set declarations) is the compiled one. False when the generation moved, or others
    /// committed during the build: the caller then verifies with a full read-back. Exits 2
    /// when the kernel differs.
    private func verify(_ build: Build, of desired: Table, on kernel: NetlinkKernel) throws -> Bool {
        let place = kernelOptions.place(KernelSync.tableName)
        guard !build.sawForeignCommits else {
            _ = try? build.verifier.finish()  // its reads may predate the others' commits: read everything again
            return false
        }
        // The skeleton is read while the verifier reads the last stage's sets, on another socket.
        let after: KernelSnapshot
        do {
            after = try withKernelErrors("reading back \(place)") {
                try kernel.dumpSkeleton(family: desired.family, table: desired.name)
            }
        } catch {
            _ = try? build.verifier.finish()
            throw error
        }
        let differing = try withKernelErrors("reading back \(place)") { try build.verifier.finish() }
        guard after.generation == build.generation else { return false }
        let sameSkeleton = after.table?.hasSkeleton(of: desired) ?? false
        if sameSkeleton && differing.isEmpty { return true }
        printError("zonewall: verification failed: \(place) differs from the compiled policy after apply:")
        if !sameSkeleton {
            let full = try? kernel.dump(family: desired.family, table: desired.name).table
            for line in KernelSync.differences(full, desired) { printError("  \(line)") }
        }
        for name in differing { printError("  set \(name): elements differ from the compiled ones") }
        throw ExitCode(2)
    }
}

/// A test-only way to make the kernel refuse a batch, so tests can prove nothing is half-applied.
///
/// `ZONEWALL_FAULT=reject` (debug builds only) appends a rule that jumps to a chain that does
/// not exist: the kernel validates the batch, refuses it with ENOENT and commits nothing.
enum FaultInjection {
    static func apply(to tx: inout Transaction) {
        #if DEBUG
        if ProcessInfo.processInfo.environment["ZONEWALL_FAULT"] == "reject" {
            tx.changes.append(.addRule(chain: "forward", Rule([.verdict(.jump("zonewall-injected-fault"))])))
        }
        #endif
    }
}
