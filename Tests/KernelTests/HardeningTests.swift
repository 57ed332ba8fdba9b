import TestSupport
import Foundation
import Glibc
import Testing

/// StrictModes and least capabilities, through the zonewall binary against namespaces of its
/// own. Skipped loudly unless root.
@Suite("Hardening: policy permissions and capabilities")
struct HardeningTests {
    /// A 0777 policy directory is refused by `apply` (exit 1, kernel untouched) and accepted
    /// once fixed; the commands that never touch the kernel do not check.
    @Test func worldWritablePolicyDirectoryIsRefusedByApply() throws {
        if skipUnlessRoot() { return }
        try withPolicy(try examplePolicyFiles()) { dir in
            try withNamespace { ns in
                chmod(dir, 0o777)
                let refused = try zonewall(["apply", "--policies", dir, "--netns", ns])
                #expect(refused.status == 1, "\(refused)")
                #expect(refused.stderr.contains("\(dir): error: insecure permissions on policy directory: writable by its group and others (owner root (uid 0), mode 0777)"), "\(refused.stderr)")
                #expect(refused.stderr.contains("chmod go-w '\(dir)'"), "\(refused.stderr)")
                #expect(try listing(ns) == nil)
                for command in ["check", "plan", "explain", "test"] {
                    let args = command == "explain" ? [command, "--policies", dir, "192.0.2.1", "198.51.100.1", "tcp/22"] : [command, "--policies", dir]
                    let o = try zonewall(args)
                    #expect(!o.stderr.contains("insecure permissions"), "\(command): \(o)")
                }
                let overridden = try zonewall(["apply", "--policies", dir, "--netns", ns, "--insecure-permissions", "--help"])
                let help = overridden.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
                #expect(help.contains("Do not use it in production: whoever can write the policy can open the firewall"), "\(overridden)")

                chmod(dir, 0o755)
                let fixed = try zonewall(["apply", "--policies", dir, "--netns", ns])
                #expect(fixed.status == 0, "\(fixed)")
                #expect(try listing(ns) != nil)
            }
        }
    }

    /// A policy file owned by another user (nobody) is refused, and applies once owned by root.
    @Test func foreignOwnedPolicyFileIsRefused() throws {
        if skipUnlessRoot() { return }
        try withPolicy(try examplePolicyFiles()) { dir in
            try withNamespace { ns in
                let file = dir + "/zones.yaml"
                try #require(chown(file, 65534, 65534) == 0)
                let refused = try zonewall(["apply", "--policies", dir, "--netns", ns])
                #expect(refused.status == 1, "\(refused)")
                #expect(refused.stderr.contains("\(file): error: insecure permissions on policy file: owned by"), "\(refused.stderr)")
                #expect(refused.stderr.contains("(uid 65534)") && refused.stderr.contains("chown root '\(file)'"), "\(refused.stderr)")
                #expect(try listing(ns) == nil)
                let insecure = try zonewall(["apply", "--policies", dir, "--netns", ns, "--insecure-permissions"])
                #expect(insecure.status == 0, "\(insecure)")
                _ = try zonewall(["remove", "--netns", ns])

                try #require(chown(file, 0, 0) == 0)
                let fixed = try zonewall(["apply", "--policies", dir, "--netns", ns])
                #expect(fixed.status == 0, "\(fixed)")
            }
        }
    }

    /// `run` refuses to start on a 0777 policy directory before opening the kernel.
    @Test func worldWritablePolicyDirectoryIsRefusedByRun() throws {
        if skipUnlessRoot() { return }
        try withPolicy(try examplePolicyFiles()) { dir in
            try withNamespace { ns in
                chmod(dir, 0o777)
                let refused = try exec(["timeout", "30", zonewallBinary, "run", "--policies", dir, "--netns", ns, "--state-file", ""])
                #expect(refused.status == 1, "\(refused)")
                #expect(refused.stderr.contains("mode 0777") && refused.stderr.contains("refusing to start"), "\(refused.stderr)")
                #expect(try listing(ns) == nil)
            }
        }
    }

    /// A running daemon keeps only CAP_NET_ADMIN on every thread, with no_new_privs; a policy
    /// made insecure under it is refused on reload: the last good one stays, status says why.
    @Test func runningDaemonHasOnlyNetAdminAndRefusesAnInsecureReload() throws {
        if skipUnlessRoot() { return }
        try withPolicy(try examplePolicyFiles()) { dir in
            try withNamespace { ns in
                let state = dir + ".state/state.json"
                defer { try? FileManager.default.removeItem(atPath: dir + ".state") }
                let daemon = try Daemon([zonewallBinary, "run", "--policies", dir, "--netns", ns, "--state-file", state,
                                         "--resync-interval", "3600"])
                defer { daemon.stop() }
                try daemon.waitForLog("zonewall running")

                let status = try String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8)
                #expect(field(status, "CapEff") == "0000000000001000", "\(status)")
                #expect(field(status, "CapPrm") == "0000000000001000", "\(status)")
                #expect(field(status, "CapInh") == "0000000000000000")
                #expect(field(status, "CapBnd") == "0000000000001000")
                #expect(field(status, "NoNewPrivs") == "1")
                let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/task")
                #expect(tasks.count > 1)
                for t in tasks {
                    guard let s = try? String(contentsOfFile: "/proc/\(daemon.pid)/task/\(t)/status", encoding: .utf8) else { continue }
                    #expect(field(s, "CapEff") == "0000000000001000" && field(s, "CapPrm") == "0000000000001000", "thread \(t): \(s)")
                }
                // State: a directory only root can enter, a file only root can read.
                var st = stat()
                #expect(stat(dir + ".state", &st) == 0 && st.st_mode & 0o777 == 0o700)
                #expect(stat(state, &st) == 0 && st.st_mode & 0o777 == 0o600)

                // An edit that would change the table, in a file made writable by others.
                let before = try listing(ns)
                let zones = dir + "/zones.yaml"
                chmod(zones, 0o666)
                try (try String(contentsOfFile: zones, encoding: .utf8)).replacingOccurrences(of: "198.51.100.200", with: "198.51.100.201")
                    .write(toFile: zones, atomically: false, encoding: .utf8)
                try daemon.waitForLog("insecure permissions on policy file")
                let applies = daemon.occurrences("applied")
                #expect(try listing(ns) == before)
                let reported = try String(contentsOfFile: state, encoding: .utf8)
                #expect(reported.contains("insecure permissions on policy file"), "\(reported)")
                let shown = try zonewall(["status", "--policies", dir, "--netns", ns, "--state-file", state])
                #expect(shown.stdout.contains("insecure permissions"), "\(shown)")

                chmod(zones, 0o644)
                try daemon.waitForLog("applied", moreThan: applies)
                #expect(try listing(ns)?.contains("198.51.100.201") == true, "the edit applies once the file is secure again")
                #expect(try !String(contentsOfFile: state, encoding: .utf8).contains("insecure permissions"))
            }
        }
    }

    func field(_ status: String, _ name: String) -> String? {
        status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }
}

/// A process running in the background, its stderr going to a file.
final class Daemon {
    let pid: pid_t
    let log: String

    init(_ args: [String]) throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("zw-kt-daemon-\(UInt32.random(in: 0...UInt32.max)).log").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, args[0], &actions, &attr, argv, environ)
        guard rc == 0 else { throw TestFailure("posix_spawn \(args): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func occurrences(_ text: String) -> Int { output.components(separatedBy: text).count - 1 }

    /// Waits up to `seconds` for `text` to appear in the output more than `moreThan` times.
    func waitForLog(_ text: String, moreThan: Int = 0, seconds: Int = 30) throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if occurrences(text) > moreThan { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { throw TestFailure("daemon exited (\(status)):\n\(output)") }
            usleep(50_000)
        }
        throw TestFailure("no '\(text)' in the daemon's output within \(seconds) s:\n\(output)")
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 where waitpid(pid, &status, WNOHANG) != pid { usleep(50_000) }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        unlink(log)
    }
}
