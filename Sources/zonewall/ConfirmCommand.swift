import ArgumentParser
import Conntrack
import Foundation
import Netfilter
import Reconciler
import Revocation
import Ruleset
import ZoneCompiler

/// A confirmation window on the command line: `60s`, `2m`, `1500ms`, or plain seconds, from 1 s
/// (less leaves no time to confirm: the change would be undone as it lands) to 24 h.
struct ConfirmDuration: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var seconds: Double

    static let range: ClosedRange<Double> = 1...86_400

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var value: Double?
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            if let v = Double(argument.dropLast(suffix.count)) { value = v * factor; break }
        }
        guard let v = value ?? Double(argument), v.isFinite, Self.range.contains(v) else { return nil }
        seconds = v
    }


    var description: String { seconds == seconds.rounded() ? "\(Int(seconds)) s" : String(format: "%.1f s", seconds) }
}

/// `zonewall confirm`: keeps the change a pending `apply --confirm` or `run --confirm-edits` made.
struct ConfirmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Confirm the pending change of `apply --confirm` or `run --confirm-edits`, so it stays (exit 1: nothing pending)."
    )

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions

    func run() throws {
        if let netns = kernelOptions.netns, NamespaceLock.identity(namespace: netns) == nil {
            // A mistyped name must not read as "nothing to confirm" while a window runs elsewhere.
            printError("zonewall: no network namespace \(netns) (`ip netns list` shows the names there are)")
            throw ExitCode(2)
        }
        let store = ConfirmationStore(netns: kernelOptions.netns, policyDirectory: options.policies)
        let confirmed: PendingConfirmation?
        do {
            confirmed = try store.confirm()
        } catch {
            printError("zonewall: \(error)")
            throw ExitCode(2)
        }
        if let p = confirmed {
            print("zonewall: confirmed: the rule set applied at \(ISO8601DateFormatter().string(from: p.appliedAt)) stays")
            return
        }
        if let other = ConfirmationStore.pending(inNamespace: kernelOptions.netns).first {
            // The window is this namespace's, opened with other policies: confirming it needs them.
            printError("zonewall: nothing to confirm for policies \(StateFile.canonicalDirectory(options.policies)); the change waiting "
                       + "in \(kernelOptions.namespacePlace) until \(ISO8601DateFormatter().string(from: other.deadline)) was made with "
                       + "policies \(other.policyDirectory): run `\(kernelOptions.confirmCommand(policies: other.policyDirectory))`")
            throw ExitCode(1)
        }
        printError("zonewall: nothing to confirm in \(kernelOptions.namespacePlace)"
                   + (store.lastOutcome().map { "; last window: \($0)" } ?? ""))
        throw ExitCode(1)
    }
}

/// `zonewall confirm-guard` (hidden): the detached process `apply --confirm` leaves behind.
///
/// It reads the table before the apply, tells the apply it is ready, learns when the commit
/// happened, and from then on waits: a confirmation ends it; the deadline makes it put the
/// previous table back in one transaction and revoke the flows that table does not admit.
struct ConfirmGuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "confirm-guard", shouldDisplay: false)

    @OptionGroup var options: PolicyOptions
    @OptionGroup var kernelOptions: KernelOptions

    @Option var seconds: Double

    func run() throws {
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let store = ConfirmationStore(netns: kernelOptions.netns, policyDirectory: options.policies)
        let kernel = try kernelOptions.openKernel()
        let previous = try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName).table
        var pending = PendingConfirmation(owner: .apply, pid: getpid(), deadline: Date().addingTimeInterval(seconds + 3600),
                                          netns: kernelOptions.netns, policyDirectory: options.absolutePolicies)
        try store.begin(pending)
        log("guarding \(kernelOptions.place(KernelSync.tableName)): previous table \(previous == nil ? "absent" : "read"), window \(seconds) s")
        _ = write(1, "ready\n", 6)  // unbuffered: the apply waits for it
        let word = readLine() ?? "go"  // the apply died: its commit may have happened, keep the window
        if word == "abort" { store.cancel(); log("the apply changed nothing; no window"); return }
        pending.appliedAt = Date()
        pending.deadline = pending.appliedAt.addingTimeInterval(seconds)
        try store.begin(pending)
        // Nobody reads these any more; the terminal may be gone.
        let null = open("/dev/null", O_RDWR)
        dup2(null, 0)
        dup2(null, 1)
        while Date() < pending.deadline {
            usleep(50_000)
            if store.pending() == nil { log("confirmed"); return }
        }
        guard store.claim() else { log("confirmed at the deadline"); return }
        do {
            let revoked = try restore(previous, on: kernel)
            let what = "reverted at \(ISO8601DateFormatter().string(from: Date())): not confirmed within \(ConfirmDuration(argument: "\(seconds)")!); "
                + "the previous rule set is back (\(previous == nil ? "no table" : "\(previous!.elementCount) elements")), \(revoked) flow(s) revoked"
            store.record(what)
            log(what)
        } catch {
            store.record("restoring the previous rule set FAILED: \(error)")
            log("restoring the previous rule set FAILED: \(error)")
            throw ExitCode(2)
        }
    }

    /// One transaction from whatever the kernel holds now back to `previous` (no table: deleted),
    /// pinned to the generation it was computed from; then the revocation a tightening gets.
    func restore(_ previous: Table?, on kernel: NetlinkKernel) throws -> Int {
        for attempt in 1...5 {
            do {
                try restoreOnce(previous, on: kernel)
                break
            } catch {
                if let e = error as? any KernelFailure, e.isGenerationMismatch, attempt < 5 { continue }
                throw error
            }
        }
        guard let previous else { return 0 }  // no table: zonewall governs nothing any more
        let report = try Revocation.revoke(in: NetlinkConntrack(namespace: kernelOptions.netns), restoring: previous)
        for r in report.revoked { log(Revoking.describe(r)) }
        return report.revoked.count
    }

    private func restoreOnce(_ previous: Table?, on kernel: NetlinkKernel) throws {
        let now = try kernel.dump(family: ZoneCompiler.family, table: ZoneCompiler.tableName)
        let tx: Transaction
        if let previous {
            tx = Transaction.diff(from: now.table, to: previous)
        } else {
            tx = Transaction(family: ZoneCompiler.family, table: ZoneCompiler.tableName,
                             changes: now.table == nil ? [] : [.addTable, .deleteTable])
        }
        if !tx.isEmpty { try kernel.apply(tx, expectingGeneration: now.generation) }
    }

    func log(_ text: String) {
        FileHandle.standardError.write(Data("\(ISO8601DateFormatter().string(from: Date())) zonewall confirm-guard[\(getpid())]: \(text)\n".utf8))
    }
}

/// The apply side of a confirmation window: starts the guard, detached in a session of its
/// own (so that a closing terminal or SSH session, or a killed parent shell, does not take it
/// along), and tells it whether the commit happened.
final class ConfirmWindow {
    private let toGuard: Int32
    let store: ConfirmationStore
    private var finished = false

    /// Starts the guard and waits until it has read the table as it is before the apply.
    init(netns: String?, policies: String, seconds: Double) throws {
        store = ConfirmationStore(netns: netns, policyDirectory: policies)
        if let p = store.pending(), kill(p.pid, 0) == 0 {
            printError("zonewall: a change is already waiting for confirmation until \(ISO8601DateFormatter().string(from: p.deadline)) "
                       + "(pid \(p.pid)); run `zonewall confirm` first")
            throw ExitCode(1)
        }
        try FileManager.default.createDirectory(atPath: store.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0 else { throw ExitCode(2) }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var args = [exe, "confirm-guard", "--policies", policies, "--seconds", "\(seconds)"]
        if let netns { args += ["--netns", netns] }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, store.logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        for fd in inPipe + outPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        // POSIX_SPAWN_SETSID (glibc 0x80): a session of its own, no controlling terminal.
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | 0x80))
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, argv, environ)
        close(inPipe[0])
        close(outPipe[1])
        toGuard = inPipe[1]
        guard rc == 0 else {
            printError("zonewall: starting the confirmation guard: \(String(cString: strerror(rc)))")
            throw ExitCode(2)
        }
        // "ready": the guard holds the previous table.
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(outPipe[0], &buf, buf.count)
        close(outPipe[0])
        guard n > 0, String(decoding: buf[0..<n], as: UTF8.self).hasPrefix("ready") else {
            printError("zonewall: the confirmation guard did not start; see \(store.logPath). Nothing was applied.")
            throw ExitCode(2)
        }
    }

    /// The commit happened (or may have): the window starts now.
    func committed() { send("go\n") }

    /// Nothing changed: the guard leaves without a window.
    func abort() { send("abort\n") }

    private func send(_ word: String) {
        guard !finished else { return }
        finished = true
        _ = word.withCString { write(toGuard, $0, strlen($0)) }
        close(toGuard)
    }

    deinit { abort() }  // an apply that failed committed nothing (its transactions are atomic)
}
