import ArgumentParser
import Netfilter
import Reconciler
import Ruleset
import ZoneCompiler

/// `zonewall remove`: deletes `table inet zonewall` and nothing else.
struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Delete table inet zonewall (only it); an absent table is not an error."
    )

    @OptionGroup var kernelOptions: KernelOptions

    func run() throws {
        let place = kernelOptions.place(KernelSync.tableName)
        let lock = try kernelOptions.lockNamespace(holder: "zonewall remove")
        defer { withExtendedLifetime(lock) {} }
        try kernelOptions.refuseWhileConfirmationPending("remove the table")
        let removed = try withKernelErrors("removing \(place)") { () throws -> Bool in
            let kernel = try kernelOptions.openKernel()
            let snapshot = try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName)
            guard snapshot.table != nil else { return false }
            let tx = Transaction(family: ZoneCompiler.family, table: ZoneCompiler.tableName, changes: [.deleteTable])
            do {
                try kernel.apply(tx, expectingGeneration: nil)
            } catch let e as NetfilterError where e.errno == 2 /* ENOENT: gone since we looked */ {
                return false
            }
            return true
        }
        print(removed ? "zonewall: removed \(place)" : "zonewall: \(place) does not exist; nothing to remove")
    }
}
