import ArgumentParser
import Foundation
import Netfilter
import Ruleset
import Synchronization

/// `zonewall-lab cgroup-restarts`: restarts unit cgroups (rmdir, then mkdir) under a running
/// `zonewall run` and times, from the kernel's own change notifications, how long each change
/// takes to reach the table, and what kind of commit carried it.
struct LabCgroupRestartsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cgroup-restarts",
        abstract: "Restart unit cgroups under a running daemon; time each from mkdir/rmdir to its commit in the kernel."
    )

    @Option(help: "Network namespace the daemon manages (as `ip netns add` names it).")
    var netns: String

    @Option(help: "Seconds to wait for each commit before giving up.")
    var timeout = 5.0

    @Argument(help: "The cgroup directories to restart, in order (each must exist and hold no process).")
    var cgroups: [String]

    /// Commits after a change that also touched the table: a change must be one transaction.
    static let quiet = Duration.milliseconds(30)

    func run() throws {
        let kernel = try NetlinkKernel(namespace: netns)
        let events = try kernel.events(family: .inet, table: "zonewall")
        final class Log: Sendable { let events = Mutex<[(ContinuousClock.Instant, KernelEvent)]>([]) }
        let log = Log()
        let reader = Task.detached {
            do { for try await e in events { log.events.withLock { $0.append((.now, e)) } } } catch {}
        }
        defer { reader.cancel() }

        /// Waits for the first commit touching the table after `since`; then counts the ones
        /// that follow within `quiet`.
        func commit(after since: ContinuousClock.Instant, what: String) throws -> (Duration, Set<String>?, Int) {
            let deadline = since + .seconds(timeout)
            while ContinuousClock.now < deadline {
                let first = log.events.withLock { $0.first { $0.0 >= since && Self.touches($0.1) } }
                if let (at, event) = first {
                    Thread.sleep(forTimeInterval: 0.030)
                    let more = log.events.withLock { $0.filter { $0.0 > at && $0.0 <= at + Self.quiet && Self.touches($0.1) }.count }
                    guard case .changed(_, _, _, _, let sets) = event else { return (at - since, nil, more) }
                    return (at - since, sets, more)
                }
                Thread.sleep(forTimeInterval: 0.0002)
            }
            throw ValidationError("no commit within \(timeout) s of \(what)")
        }

        var appear: [Duration] = [], vanish: [Duration] = []
        var notElementOnly = 0, extraCommits = 0, sets = Set<String>()
        for path in cgroups {
            var t0 = ContinuousClock.now
            guard rmdir(path) == 0 else { throw ValidationError("rmdir \(path): \(String(cString: strerror(errno)))") }
            let (v, vSets, vMore) = try commit(after: t0, what: "rmdir \(path)")
            t0 = ContinuousClock.now
            guard mkdir(path, 0o755) == 0 else { throw ValidationError("mkdir \(path): \(String(cString: strerror(errno)))") }
            let (a, aSets, aMore) = try commit(after: t0, what: "mkdir \(path)")
            vanish.append(v)
            appear.append(a)
            for s in [vSets, aSets] { if let s { sets.formUnion(s) } else { notElementOnly += 1 } }
            extraCommits += vMore + aMore
        }
        func ms(_ d: Duration) -> String { String(format: "%.2f", Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1000) }
        func pct(_ xs: [Duration], _ p: Double) -> Duration {
            let s = xs.sorted()
            return s[min(s.count - 1, Int((Double(s.count) * p).rounded(.up)) - 1)]
        }
        print("restarts: \(cgroups.count)")
        print("appear → commit ms: p50 \(ms(pct(appear, 0.5))) p99 \(ms(pct(appear, 0.99))) max \(ms(appear.max()!))")
        print("vanish → commit ms: p50 \(ms(pct(vanish, 0.5))) p99 \(ms(pct(vanish, 0.99))) max \(ms(vanish.max()!))")
        print("commits that changed more than set elements: \(notElementOnly)")
        print("further commits within \(Self.quiet) of a change: \(extraCommits)")
        print("sets changed: \(sets.sorted().joined(separator: " "))")
    }

    static func touches(_ e: KernelEvent) -> Bool {
        switch e {
        case .changed(_, _, _, let touched, _): touched
        case .overflow: true
        }
    }
}
