import Foundation
import Testing
import TestSupport

/// `zonewall diff --base REV` names the files of the base policy as git does, relative to the
/// repository's top, wherever it runs from: a label pastes into `git show`.
@Suite("diff --base: labels of the base revision's files")
struct DiffBaseLabelTests {
    /// Runs `executable ARGS…` in `directory`; the exit status, standard output and error.
    static func run(_ executable: String, _ args: [String], in directory: String) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("zw-base-\(UUID().uuidString).err")
        let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("zw-base-\(UUID().uuidString).out")
        // A file that could not be made fails the `FileHandle(forWritingTo:)` below.
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile); try? FileManager.default.removeItem(at: outFile) }
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        p.standardError = try FileHandle(forWritingTo: errFile)
        p.standardInput = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env["GIT_CONFIG_NOSYSTEM"] = "1"
        env["HOME"] = directory
        p.environment = env
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: outFile, encoding: .utf8), try String(contentsOf: errFile, encoding: .utf8))
    }

    static var git: String? {
        ["/usr/bin/git", "/bin/git", "/usr/local/bin/git"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func baseFilesAreNamedRelativeToTheRepositoryTop() throws {
        guard let git = Self.git else { return }  // git missing: nothing to read a revision with
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("zw-base-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let repo = parent + "/repo"
        try FileManager.default.createDirectory(atPath: repo + "/pol", withIntermediateDirectories: true)
        // The base revision's file has an error at line 2, so that its label is printed.
        try "zones:\n  web: {members: [192.0.2.1/24]}\n".write(toFile: repo + "/pol/rules.yaml", atomically: true, encoding: .utf8)
        for args in [["init", "-q"], ["add", "pol/rules.yaml"],
                     ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "base"]] {
            let r = try Self.run(git, args, in: repo)
            try #require(r.status == 0, "git \(args): \(r.err)")
        }
        try "zones:\n  web: {members: [192.0.2.0/24]}\n".write(toFile: repo + "/pol/rules.yaml", atomically: true, encoding: .utf8)

        // From the repository's parent, from its top and from the policy directory itself.
        for (cwd, policies) in [(parent, "repo/pol"), (repo, "pol"), (repo + "/pol", "."), (parent, repo + "/pol/")] {
            let r = try Self.run(zonewallBinary, ["diff", "--base", "HEAD", "--policies", policies], in: cwd)
            #expect(r.status == 1, "from \(cwd): \(r.err)")
            #expect(r.err.contains("HEAD:pol/rules.yaml:2:"), "from \(cwd) with --policies \(policies): \(r.err)")
            let label = try #require(r.err.split(separator: "\n").first { $0.hasPrefix("HEAD:") }, "\(r.err)")
            let shown = try Self.run(git, ["show", String(label.split(separator: ":").prefix(2).joined(separator: ":"))], in: repo)
            #expect(shown.status == 0, "the label \(label) must name the file for git show: \(shown.err)")
        }
    }
}
