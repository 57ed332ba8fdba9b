import ArgumentParser
import Foundation
import Reconciler
import Ruleset
import ZoneCompiler
import ZonePolicy

/// `zonewall-lab recompile`: what a daemon spends on one member edit, in this process, no
/// kernel involved: the incremental compile against a whole one, the diff and the digest.
/// `scripts/bench fleet` runs it.
struct LabRecompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recompile",
        abstract: "Time the incremental compile of member edits against a whole compile (used by scripts/bench)."
    )

    @Option(help: "Directory of *.yaml policy files.")
    var policies: String

    @Option(help: "Member edits (one /128 added to a zone, then removed again).")
    var edits = 200

    @Option(help: ArgumentHelp("Also time reloads of the directory as the daemon does them (parse cache, no lints) after this file of it changes (a comment is appended, then removed).", valueName: "FILE"))
    var reloadFile: String?

    func run() throws {
        let result = PolicyLoader.load(directory: policies)
        guard let policy = result.policy else {
            for d in result.errors { printError(d.description) }
            throw ExitCode(1)
        }
        func time<T>(_ body: () -> T) -> (T, Double) {
            let start = DispatchTime.now().uptimeNanoseconds
            let value = body()
            return (value, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        var whole: [Double] = []
        var compiled = ZoneCompiler.compile(policy, after: nil)
        for _ in 0..<3 { whole.append(time { ZoneCompiler.compile(policy, after: nil) }.1) }
        let digests = DigestCache()
        _ = digests.of(compiled.table)

        var compile: [Double] = [], diff: [Double] = [], digest: [Double] = [], changes: [Int] = []
        var current = policy
        let location = SourceLocation(path: "edit", line: 0, column: 0)
        for i in 0..<edits {
            var edited = current
            let zone = (i / 2 * 7919) % edited.zones.count
            let address = IPPrefix(family: .ipv6, address: (0x2001_0db8_fffd << 80) | UInt128(i / 2 + 1) << 1, length: 128)
            if i % 2 == 0 {
                edited.zones[zone].members.append(Located(address, at: location))
            } else {
                edited.zones[zone].members.removeAll { $0.value == address }
            }
            let (next, c) = time { ZoneCompiler.compile(edited, after: compiled) }
            guard case .incremental = next.kind else { printError("edit \(i) was compiled whole"); throw ExitCode(1) }
            let (tx, d) = time { Transaction.diff(from: compiled.table, to: next.table) }
            let (_, g) = time { digests.of(next.table) }
            compile.append(c); diff.append(d); digest.append(g); changes.append(tx.changeCount)
            compiled = next
            current = edited
        }
        if let reloadFile { try timeReloads(changing: reloadFile) }
        let check = ZoneCompiler.compile(current, after: nil).table == compiled.table
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        func p99(_ v: [Double]) -> Double { v.sorted()[min(v.count - 1, Int((Double(v.count - 1) * 0.99).rounded()))] }
        print(String(format: "zones %d members %d rules %d elements %d", policy.zones.count,
                     policy.zones.reduce(0) { $0 + $1.members.count }, policy.rules.count, compiled.table.elementCount))
        print(String(format: "whole compile: median %.2f ms (of 3)", median(whole)))
        print(String(format: "incremental compile of one member edit (%d edits): median %.3f ms, p99 %.3f ms; ratio to whole %.4f×",
                     edits, median(compile), p99(compile), median(compile) / median(whole)))
        print(String(format: "diff: median %.3f ms, p99 %.3f ms (median %d element changes); digest: median %.3f ms, p99 %.3f ms",
                     median(diff), p99(diff), changes.sorted()[changes.count / 2], median(digest), p99(digest)))
        print("after all edits the incremental table equals a whole compile: \(check ? "yes" : "NO")")
        if !check { throw ExitCode(1) }
    }

    /// The daemon's load after one file's edit: every file read and hashed, the changed one parsed,
    /// the whole policy resolved.
    func timeReloads(changing file: String) throws {
        let original = try String(contentsOfFile: file, encoding: .utf8)
        defer { try? original.write(toFile: file, atomically: true, encoding: .utf8) }
        let cache = ParseCache()
        _ = PolicyLoader.load(directory: policies, concurrently: false, cache: cache, warnings: false)
        var times: [Double] = []
        for i in 0..<20 {
            try (original + "\n# edit \(i)\n").write(toFile: file, atomically: true, encoding: .utf8)
            let start = DispatchTime.now().uptimeNanoseconds
            let result = PolicyLoader.load(directory: policies, concurrently: false, cache: cache, warnings: false)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            guard result.policy != nil else { printError("the edited policy does not load"); throw ExitCode(1) }
        }
        print(String(format: "reload after one file changed (parse cache, no lints; 20 reloads): median %.2f ms; files not read again (stamp unchanged): %d", times.sorted()[10], cache.unreadFiles))
    }
}
