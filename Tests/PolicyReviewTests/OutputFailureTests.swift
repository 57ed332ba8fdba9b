import Foundation
import Testing

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

    @Test(arguments: [["graph"], ["graph", "--format", "dot"], ["schema"], ["diff", "--base", "BASE"], ["check"], ["explain", "web", "db", "tcp/5432"]])
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
}
