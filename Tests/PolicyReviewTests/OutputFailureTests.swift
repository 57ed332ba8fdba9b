import Foundation
import Testing
import TestSupport

/// Review commands when their output cannot be written: one line on standard error and exit 1
/// for a full disk, a quiet 141 for a reader that went away; never a silent exit 0.
@Suite(.serialized) struct ReviewOutputFailureTests {
    static let policy = """
        zones:
          web: {members: [198.51.100.0/24]}
          db: {members: [203.0.113.5]}
        allow:
          - {from: web, to: db, ports: [tcp/5432]}
          - {from: [web, db], to: host, ports: [tcp/22], lint: {ignore: [every-zone], reason: "both are administered over ssh"}}

        """

    static let noSpace = "zonewall: writing the output: No space left on device\n"

    @Test(arguments: [["graph"], ["graph", "--format", "dot"], ["schema"], ["diff", "--base", "BASE"], ["check"], ["explain", "web", "db", "tcp/5432"], ["plan"]])
    func outputFailuresAreReported(_ command: [String]) throws {
        try withDirectory(["policy.yaml": Self.policy]) { dir in
            try withDirectory(["policy.yaml": Self.policy.replacingOccurrences(of: "tcp/5432", with: "tcp/5433")]) { base in
                var args = command.map { $0 == "BASE" ? base : $0 }
                if command != ["schema"] { args += ["--policies", dir] }
                let full = try runZonewall(args, stdout: .file("/dev/full"))
                #expect(full.status == 1 && full.stderr == Self.noSpace, "\(command): \(full)")
                let closed = try runZonewall(args, stdout: .closedPipe)
                #expect(closed.status == 141 && closed.stderr.isEmpty, "\(command): \(closed)")
            }
        }
    }

    /// `report --html` names the path and the reason it cannot be written; `-` is standard output.
    @Test func reportSaysWhyItCannotWrite() throws {
        try withDirectory(["policy.yaml": Self.policy]) { dir in
            let directory = try runZonewall(["report", "--policies", dir, "--html", dir], stdout: .file("/dev/null"))
            #expect(directory.status == 1 && directory.stderr == "zonewall: cannot write the report to \(dir): Is a directory\n", "\(directory)")
            let missing = "\(dir)/no/such/report.html"
            let parent = try runZonewall(["report", "--policies", dir, "--html", missing], stdout: .file("/dev/null"))
            #expect(parent.status == 1 && parent.stderr == "zonewall: cannot write the report to \(missing): No such file or directory\n", "\(parent)")

            let stdout = try runZonewall(["report", "--policies", dir, "--html", "-"], stdout: .file("\(dir)/page.out"))
            #expect(stdout.status == 0, "\(stdout)")
            let page = try String(contentsOfFile: "\(dir)/page.out", encoding: .utf8)
            #expect(page.hasPrefix("<!DOCTYPE html>") && page.hasSuffix("</html>\n"))
            let full = try runZonewall(["report", "--policies", dir, "--html", "-"], stdout: .file("/dev/full"))
            #expect(full.status == 1 && full.stderr == Self.noSpace, "\(full)")

            let file = "\(dir)/report.html"
            let written = try runZonewall(["report", "--policies", dir, "--html", file], stdout: .file("\(dir)/wrote.out"))
            #expect(written.status == 0, "\(written)")
            #expect(try String(contentsOfFile: file, encoding: .utf8) == page)
            #expect(try String(contentsOfFile: "\(dir)/wrote.out", encoding: .utf8) == "wrote \(file)\n")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.hasPrefix(".zonewall-report") })
        }
    }
}
