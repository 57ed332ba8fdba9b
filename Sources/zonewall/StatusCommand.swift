import ArgumentParser
import Foundation
import Netfilter
import Ruleset
import ZoneCompiler
import ZonePolicy

/// `zonewall status`: whether the kernel holds exactly the compiled policy (exit 0) or not (exit 4).
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Compare the kernel's table with the policy: 'in sync' (exit 0) or the difference (exit 4)."
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions

    @Option(help: "Most lines of the pending transaction to print.")
    var maxLines: Int = 40

    func run() throws {
        let (policy, _) = try options.loadOrExit(printWarnings: false)
        let desired = ZoneCompiler.compile(policy)
        let place = kernelOptions.place(KernelSync.tableName)
        let snapshot = try withKernelErrors("reading \(place)") {
            let kernel = try kernelOptions.openKernel()
            return try kernel.dump(family: desired.family, table: desired.name)
        }
        if KernelSync.equivalent(snapshot.table, desired) {
            print("in sync: \(place) holds the compiled policy (\(desired.elementCount) elements, generation \(snapshot.generation))")
            return
        }
        print("out of sync: \(place) differs from the policy:")
        for line in KernelSync.differences(snapshot.table, desired) { print("  \(line)") }
        let tx = KernelSync.transaction(from: snapshot.table, to: desired)
        let lines = Self.text(of: tx, declaredIn: desired)
        print("\(tx.replacesTable ? "apply would replace the table" : "apply would change \(tx.elementChanges) element(s)"):")
        for l in lines.prefix(maxLines) { print("  \(l)") }
        if lines.count > maxLines { print("  … \(lines.count - maxLines) more line(s)") }
        throw ExitCode(4)
    }

    /// `Transaction.nftText`, with element changes rendered using the policy's set declarations
    /// (an element-only transaction does not declare the sets it edits).
    static func text(of tx: Transaction, declaredIn table: Table) -> [String] {
        let t = "\(tx.family) \(tx.table)"
        return tx.changes.flatMap { change -> [String] in
            switch change {
            case .addElements(let name, let elements), .deleteElements(let name, let elements):
                guard let set = table.set(named: name) else { fallthrough }
                let verb = if case .addElements = change { "add" } else { "delete" }
                return ["\(verb) element \(t) \(name) { \(elements.map { NftText.render($0, of: set) }.joined(separator: ", ")) }"]
            default:
                var one = tx
                one.changes = [change]
                return one.nftText.split(separator: "\n").map(String.init)
            }
        }
    }
}
