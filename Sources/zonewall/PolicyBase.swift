import ArgumentParser
import Foundation
import HostIdentity
import ZonePolicy

/// Reads the policy a review compares against: a directory, or the policy directory as it was at
/// a git revision (read with the user's `git`, so diagnostics name `REV:DIR/file.yaml`,
/// DIR relative to the repository's top).
enum PolicyBase {
    /// Loads `base`; prints diagnostics and exits 1 when it is invalid or cannot be read.
    static func load(_ base: String, policies: String) throws -> Policy {
        var isDir: ObjCBool = false
        let result: LoadResult
        if FileManager.default.fileExists(atPath: base, isDirectory: &isDir) && isDir.boolValue {
            result = PolicyLoader.load(directory: base, users: UserResolver.uid)
        } else {
            result = try loadRevision(base, policies: policies)
        }
        return try validOrExit(result, what: "the base policy (\(base))")
    }

    /// The policy, or exit 1 after printing its errors.
    static func validOrExit(_ result: LoadResult, what: String) throws -> Policy {
        for d in result.errors { printError(d.description) }
        guard let policy = result.policy else {
            printError("zonewall: \(what) has \(result.errors.count) error(s)")
            throw ExitCode(1)
        }
        return policy
    }

    /// `git show REV:./FILE` for every policy file of `policies` at `revision`.
    static func loadRevision(_ revision: String, policies: String) throws -> LoadResult {
        guard let git = findExecutable("git") else {
            printError("zonewall: --base '\(revision)' is not a directory, and git is not installed to read it as a revision")
            printError("zonewall: note: install git (apt-get install git), or pass a policy directory as --base")
            throw ExitCode(1)
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: policies, isDirectory: &isDir), isDir.boolValue else {
            printError("\(policies): error: policy directory does not exist (needed to find the git repository for --base \(revision))")
            throw ExitCode(1)
        }
        let verify = run(git, ["-C", policies, "rev-parse", "--verify", "--quiet", "\(revision)^{commit}"])
        guard verify.status == 0 else {
            printError("zonewall: --base '\(revision)' is neither a directory nor a git revision of the repository holding \(policies)")
            if !verify.stderr.isEmpty { printError(verify.stderr.trimmingCharacters(in: .whitespacesAndNewlines)) }
            throw ExitCode(1)
        }
        // Labelled with the path git uses, relative to the repository's top (`REV:pol/rules.yaml`),
        // whatever the current directory: a label can be pasted into `git show`.
        let prefix = run(git, ["-C", policies, "rev-parse", "--show-prefix"])
        let relative = prefix.status == 0 ? prefix.stdout.trimmingCharacters(in: .newlines) : ""
        let shown = relative.isEmpty ? "." : (relative.hasSuffix("/") ? String(relative.dropLast()) : relative)
        let list = run(git, ["-C", policies, "ls-tree", "--full-tree", "--name-only", "\(revision):./"])
        guard list.status == 0 else {
            printError("\(revision):\(shown): error: policy directory does not exist at this revision")
            throw ExitCode(1)
        }
        let names = list.stdout.split(separator: "\n").map(String.init)
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }.sorted()
        guard !names.isEmpty else {
            printError("\(revision):\(shown): error: policy directory has no *.yaml or *.yml files at this revision")
            throw ExitCode(1)
        }
        var files: [PolicyFile] = []
        for name in names {
            let show = run(git, ["-C", policies, "show", "\(revision):./\(name)"])
            guard show.status == 0 else {
                printError("\(revision):\(relative)\(name): error: cannot read: \(show.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
                throw ExitCode(1)
            }
            files.append(PolicyFile(path: "\(revision):\(relative)\(name)", contents: show.stdout))
        }
        return PolicyLoader.parse(files, users: UserResolver.uid)
    }

    /// The first executable named `name` on PATH.
    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a program to completion, capturing its output.
    static func run(_ executable: String, _ arguments: [String], input: String? = nil) -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let inPipe = Pipe()
        p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        do { try p.run() } catch { return (127, "", "cannot run \(executable): \(error)") }
        if let input {
            // Written on another thread: a large input would otherwise fill the pipe while we wait.
            let data = Data(input.utf8)
            let writer = inPipe.fileHandleForWriting
            DispatchQueue.global().async { writer.write(data); try? writer.close() }
        }
        // Both pipes drained concurrently: a chatty stderr must not block stdout.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}
