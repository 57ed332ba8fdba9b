import Foundation
import Testing
import TestSupport
import ZonePolicy
@testable import FlowLog

/// `zonewall log` and `suggest` when their output cannot be written: one line on standard error
/// and exit 1 for a full disk, a quiet 141 for a reader that went away; never a crash, never a
/// silent exit 0.
@Suite(.serialized) struct LogOutputFailureTests {
    static let policy = """
        zones:
          web: {members: [198.51.100.0/24]}
          db: {members: [203.0.113.5]}
        allow:
          - {from: web, to: db, ports: [tcp/5432]}
        settings: {log_denied: true}

        """

    static let noSpace = "zonewall: writing the output: No space left on device\n"

    /// A daemon's flow log stream holding one denied packet (web → db tcp/22), replayed with `--since`.
    func withStream<T>(_ body: (_ policies: String, _ socket: String) throws -> T) throws -> T {
        try withDirectory(["policy.yaml": Self.policy]) { dir in
            let server = try FlowStreamServer(path: "\(dir)/flowlog.sock")
            defer { server.close() }
            server.publish(LoggedPacket(time: Date(), verdict: .denied, hook: .forward, src: IPPrefix.parse("198.51.100.4")!,
                                        dst: IPPrefix.parse("203.0.113.5")!, proto: 6, port: 22))
            return try body(dir, server.path)
        }
    }

    func log(_ dir: String, _ socket: String, json: Bool = true) -> [String] {
        ["log", "--policies", dir, "--socket", socket, "--since", "1h", "--duration", "5"] + (json ? ["--json"] : [])
    }

    @Test func logIntoAFullDiskSaysSoAndExits1() throws {
        try withStream { dir, socket in
            for json in [true, false] {
                let r = try runZonewall(log(dir, socket, json: json), stdout: .file("/dev/full"))
                #expect(r.status == 1 && r.stderr == Self.noSpace, "json \(json): \(r)")
            }
        }
    }

    @Test func logIntoAClosedPipeEndsQuietly() throws {
        try withStream { dir, socket in
            let r = try runZonewall(log(dir, socket), stdout: .closedPipe)
            #expect(r.status == 141 && r.stderr.isEmpty, "\(r)")
        }
    }

    @Test func logIntoAFileWritesTheRecord() throws {
        try withStream { dir, socket in
            let out = "\(dir)/out.jsonl"
            let r = try runZonewall(log(dir, socket).map { $0 == "5" ? "1" : $0 }, stdout: .file(out))
            #expect(r.status == 0, "\(r)")
            let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 1 && lines.first?.contains("\"from\":\"web\"") == true, "\(lines)")
        }
    }

    /// The text log's `allow:` hint quotes zone names YAML would read as something else.
    @Test func logHintsQuoteZoneNames() throws {
        let policy = "zones:\n  \"no\": {members: [198.51.100.0/24]}\n  \"null\": {members: [203.0.113.5]}\n"
        try withDirectory(["policy.yaml": policy]) { dir in
            let server = try FlowStreamServer(path: "\(dir)/flowlog.sock")
            defer { server.close() }
            server.publish(LoggedPacket(time: Date(), verdict: .denied, hook: .forward, src: IPPrefix.parse("198.51.100.4")!,
                                        dst: IPPrefix.parse("203.0.113.5")!, proto: 6, port: 22))
            let r = try runZonewall(["log", "--policies", dir, "--socket", server.path, "--since", "1h", "--duration", "1"], stdout: .file("\(dir)/out.txt"))
            #expect(r.status == 0, "\(r)")
            let text = try String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8)
            #expect(text.contains("  allow: {from: \"no\", to: \"null\", ports: [tcp/22]}\n"), "\(text)")
        }
    }

    /// A bad count or port in a log file is reported at its file:line with what is wrong.
    @Test func suggestNamesBadCountsAndPortsByLine() throws {
        let good = #"{"count":3,"dst":"203.0.113.5","from":"web","hook":"forward","port":22,"proto":"tcp","src":"198.51.100.4","time":"2026-11-30T07:01:02.345Z","to":"db","verdict":"denied"}"#
        let lines = [good, good.replacingOccurrences(of: #""count":3"#, with: #""count":-5"#),
                     good.replacingOccurrences(of: #""port":22"#, with: #""port":70000"#)]
        try withDirectory(["policy.yaml": Self.policy, "flows.jsonl": lines.joined(separator: "\n") + "\n"]) { dir in
            let r = try runZonewall(["suggest", "--policies", dir, "--from-log", "\(dir)/flows.jsonl"], stdout: .file("/dev/null"))
            #expect(r.status == 1, "\(r)")
            #expect(r.stderr == """
                \(dir)/flows.jsonl:2:1: error: not a `zonewall log --json` record: 'count' must be a packet count of at least 1, found -5
                \(dir)/flows.jsonl:3:1: error: not a `zonewall log --json` record: 'port' must be a port, 0-65535, found 70000
                zonewall: 2 line(s) of \(dir)/flows.jsonl are not flow log records; nothing suggested

                """, "\(r)")
        }
    }

    /// A log cut while it was written (its last line half a record, no newline) is read up to that
    /// line, which is skipped with a warning; other bad lines are said in words, not the decoder's.
    @Test func suggestSkipsACutLastLineAndSaysWhatIsWrong() throws {
        let good = #"{"count":3,"dst":"203.0.113.5","from":"web","hook":"forward","port":22,"proto":"tcp","src":"198.51.100.4","time":"2026-11-30T07:01:02.345Z","to":"db","verdict":"denied"}"#
        try withDirectory(["policy.yaml": Self.policy, "flows.jsonl": good + "\n" + good.prefix(60),
                           "bad.jsonl": "[1,2,3]\n" + good.replacingOccurrences(of: #""verdict":"denied""#, with: #""verdict":"accept""#) + "\n{\"count\":\n"]) { dir in
            let cut = try runZonewall(["suggest", "--policies", dir, "--from-log", "\(dir)/flows.jsonl"], stdout: .file("\(dir)/out.txt"))
            #expect(cut.status == 0 && cut.stderr.contains("flows.jsonl:2:1: warning: the last line is cut short"), "\(cut)")
            #expect(try String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8).contains("tcp/22"))
            let bad = try runZonewall(["suggest", "--policies", dir, "--from-log", "\(dir)/bad.jsonl"], stdout: .file("/dev/null"))
            #expect(bad.status == 1, "\(bad)")
            #expect(bad.stderr.contains("bad.jsonl:1:1: error: not a `zonewall log --json` record: not a JSON object"), "\(bad)")
            #expect(bad.stderr.contains("bad.jsonl:2:1: error: not a `zonewall log --json` record: bad value for 'verdict'"), "\(bad)")
            #expect(bad.stderr.contains("bad.jsonl:3:1: error: not a `zonewall log --json` record: malformed JSON"), "\(bad)")
            let directory = try runZonewall(["suggest", "--policies", dir, "--from-log", dir], stdout: .file("/dev/null"))
            #expect(directory.status == 1 && directory.stderr.contains("cannot read: is a directory"), "\(directory)")
        }
    }

    @Test func suggestIntoAFullDiskOrAClosedPipe() throws {
        let record = #"{"count":3,"dst":"203.0.113.5","from":"web","hook":"forward","port":22,"proto":"tcp","src":"198.51.100.4","time":"2026-11-30T07:01:02.345Z","to":"db","verdict":"denied"}"#
        try withDirectory(["policy.yaml": Self.policy, "flows.jsonl": record + "\n"]) { dir in
            let args = ["suggest", "--policies", dir, "--from-log", "\(dir)/flows.jsonl"]
            let full = try runZonewall(args, stdout: .file("/dev/full"))
            #expect(full.status == 1 && full.stderr == Self.noSpace, "\(full)")
            let closed = try runZonewall(args, stdout: .closedPipe)
            #expect(closed.status == 141 && closed.stderr.isEmpty, "\(closed)")
            let ok = try runZonewall(args, stdout: .file("\(dir)/out.txt"))
            #expect(ok.status == 0, "\(ok)")
            #expect(try String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8).contains("tcp/22"))
        }
    }
}

/// Seconds that cannot become a sleep (`nan`, `inf`, `1e300`) are usage errors, not a trap.
@Suite(.serialized) struct SecondsValidationTests {
    static let bad = ["nan", "inf", "-inf", "1e300", "0", "-5", "31622401"]

    @Test func logDurationMustBeAFinitePositiveNumber() throws {
        try LogOutputFailureTests().withStream { dir, socket in
            for value in Self.bad {
                let r = try runZonewall(["log", "--json", "--policies", dir, "--socket", socket, "--duration=\(value)"], stdout: .file("/dev/null"))
                #expect(r.status == 1 && r.stderr.contains("--duration must be a positive number of seconds, at most 31622400 (366 days)"),
                        "\(value): \(r)")
            }
            let ok = try runZonewall(["log", "--json", "--policies", dir, "--socket", socket, "--duration", "0.2"], stdout: .file("/dev/null"))
            #expect(ok.status == 0, "\(ok)")
            // The value as it was written: 0, not 0.0.
            let zero = try runZonewall(["log", "--json", "--policies", dir, "--socket", socket, "--duration", "0"], stdout: .file("/dev/null"))
            #expect(zero.stderr.contains("found '0'"), "\(zero)")
        }
    }

    @Test func suggestFollowMustBeAFinitePositiveNumber() throws {
        try LogOutputFailureTests().withStream { dir, socket in
            for value in Self.bad {
                let r = try runZonewall(["suggest", "--policies", dir, "--socket", socket, "--follow=\(value)"], stdout: .file("/dev/null"))
                #expect(r.status == 1 && r.stderr.contains("--follow must be a positive number of seconds, at most 31622400 (366 days)"),
                        "\(value): \(r)")
            }
            // --duration means the same as --follow here; both at once is a usage error.
            let both = try runZonewall(["suggest", "--policies", dir, "--socket", socket, "--follow", "1", "--duration", "1"], stdout: .file("/dev/null"))
            #expect(both.status == 1 && both.stderr.contains("--follow and --duration both say how long"), "\(both)")
            let duration = try runZonewall(["suggest", "--policies", dir, "--socket", socket, "--duration", "0.3"], stdout: .file("/dev/null"))
            #expect(duration.status == 0, "\(duration)")
        }
    }
}

/// A policy that sends nothing to its NFLOG group gets a warning, not a silent wait.
@Suite(.serialized) struct SilentPolicyTests {
    @Test func logWarnsWhenThePolicyLogsNothing() throws {
        let cases: [(settings: String, warning: String?)] = [
            ("", "warning: the policy logs nothing: log_denied is false and no zone is in audit mode"),
            ("settings: {log_denied: true, log_to: kernel}\n", "warning: the policy logs to the kernel log (log_to: kernel)"),
            ("settings: {log_denied: true}\n", nil),
            ("settings: {audit: true}\n", nil),
        ]
        for c in cases {
            let policy = "zones:\n  web: {members: [198.51.100.0/24]}\nallow:\n  - {from: web, to: world, ports: [tcp/443]}\n" + c.settings
            try withDirectory(["policy.yaml": policy]) { dir in
                let server = try FlowStreamServer(path: "\(dir)/flowlog.sock")
                defer { server.close() }
                let r = try runZonewall(["log", "--json", "--policies", dir, "--socket", server.path, "--duration", "0.2"], stdout: .file("/dev/null"))
                #expect(r.status == 0, "\(r)")
                if let w = c.warning { #expect(r.stderr.contains(w), "\(c.settings): \(r)") } else { #expect(r.stderr.isEmpty, "\(c.settings): \(r)") }
            }
        }
    }
}
