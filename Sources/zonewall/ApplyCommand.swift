import ArgumentParser
import Foundation
import Netfilter
import Ruleset
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
    @OptionGroup var kernelOptions: KernelOptions

    /// Attempts when the ruleset generation moves under us (`ERESTART`).
    static let attempts = 5

    func run() throws {
        let (policy, _) = try options.loadOrExit()
        let desired = ZoneCompiler.compile(policy)
        let start = ContinuousClock.now
        let place = kernelOptions.place(KernelSync.tableName)

        let kernel = try withKernelErrors("opening nftables") { try kernelOptions.openKernel() }
        var applied: Transaction?
        try withKernelErrors("applying to \(place)") {
            for attempt in 1...Self.attempts {
                let snapshot = try kernel.dump(family: desired.family, table: desired.name)
                var tx = KernelSync.transaction(from: snapshot.table, to: desired)
                if tx.isEmpty { applied = tx; return }
                FaultInjection.apply(to: &tx)
                do {
                    try kernel.apply(tx, expectingGeneration: snapshot.generation)
                    applied = tx
                    return
                } catch let e as NetfilterError where e.isGenerationMismatch && attempt < Self.attempts {
                    continue  // someone else committed between our dump and our batch: diff again
                }
            }
        }
        let readBack = ContinuousClock.now
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
        if tx.isEmpty {
            what = "already in sync, 0 changes"
        } else if tx.replacesTable {
            what = "replaced \(place): \(tx.changes.count) changes"
        } else {
            what = "updated \(place): \(tx.changes.count) changes, \(tx.elementChanges) element(s) added or deleted"
        }
        print("zonewall: \(what); \(desired.elementCount) elements, \(desired.sets.count) sets, "
              + "\(desired.chains.count) chains; done in \(KernelSync.milliseconds(since: start)), "
              + "of which the read-back that verified it took \(KernelSync.milliseconds(since: readBack))")
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
