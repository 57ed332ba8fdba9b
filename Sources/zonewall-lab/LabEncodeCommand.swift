import ArgumentParser
import Foundation
import Netfilter
import Ruleset
import ZoneCompiler
import ZonePolicy

/// `zonewall-lab encode`: how long encoding a policy's cold-apply batch takes with each
/// element path (libnftnl, and the hand-written fast path), in this process, no kernel
/// involved. `scripts/bench encode` runs it.
struct LabEncodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Time encoding a policy's cold-apply batch with each element path (used by scripts/bench)."
    )

    @Option(help: "Directory of *.yaml policy files.")
    var policies: String

    @Option(help: "Encodings per path; the best is reported.")
    var reps = 5

    func run() throws {
        let result = PolicyLoader.load(directory: policies)
        guard let policy = result.policy else {
            for d in result.errors { printError(d.description) }
            throw ExitCode(1)
        }
        let tx = Transaction.create(ZoneCompiler.compile(policy))
        let elements = tx.changes.reduce(0) {
            if case .addElements(_, let e) = $1 { $0 + e.count } else { $0 }
        }
        var best: [String: (seconds: Double, bytes: Int)] = [:]
        for _ in 0..<reps {
            for path in ["libnftnl", "direct"] {
                let start = DispatchTime.now().uptimeNanoseconds
                guard let bytes = NetlinkKernel.encodedBatchBytes(of: tx, elementPath: path) else { throw ExitCode(1) }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if seconds < best[path]?.seconds ?? .infinity { best[path] = (seconds, bytes) }
            }
        }
        let lib = best["libnftnl"]!, direct = best["direct"]!
        print("elements \(elements) messages-bytes \(lib.bytes)")
        print(String(format: "libnftnl %.3f s  direct %.3f s  ratio libnftnl/direct %.2f  same size %@",
                     lib.seconds, direct.seconds, lib.seconds / direct.seconds, lib.bytes == direct.bytes ? "yes" : "NO"))
    }
}
