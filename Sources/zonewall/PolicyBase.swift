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
        // NUL-terminated, unquoted names with their modes: `é.yaml` is not `"\303\251.yaml"`.
        let list = runData(git, ["-C", policies, "ls-tree", "-z", "--full-tree", "\(revision):./"])
        guard list.status == 0 else {
            // The change that adds the policy directory: everything it allows is new, against
            // an empty policy (which denies nothing it governs, as it governs no zone).
            if run(git, ["-C", policies, "cat-file", "-e", "\(revision):./"]).status != 0 {
                printError("\(revision):\(shown): note: the policy directory does not exist at this revision; compared with an empty policy")
                return PolicyLoader.parse([], users: UserResolver.uid)
            }
            printError("\(revision):\(shown): error: cannot read the policy directory at this revision: "
                       + String(decoding: list.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            throw ExitCode(1)
        }
        let entries = list.stdout.split(separator: 0).compactMap(TreeEntry.init).filter { PolicyLoader.isPolicyFileName($0.name) }
            .sorted { $0.name < $1.name }
        guard !entries.isEmpty else {
            printError("\(revision):\(shown): error: policy directory has no *.yaml or *.yml files at this revision")
            throw ExitCode(1)
        }
        // Read as the directory loader reads a checkout: regular files, symbolic links followed,
        // anything else (a directory named x.yaml, a submodule) refused, and UTF-8 only.
        var files: [PolicyFile] = []
        var problems: [String] = []
        for entry in entries {
            let label = "\(revision):\(relative)\(entry.name)"
            var object = entry.object
            if entry.mode == "120000" {
                let target = String(decoding: runData(git, ["-C", policies, "cat-file", "blob", entry.object]).stdout, as: UTF8.self)
                guard let path = Self.resolve(link: target, in: relative) else {
                    problems.append("\(label): error: symbolic link to '\(target)' leads outside the repository")
                    continue
                }
                object = "\(revision):\(path)"
            } else if entry.type != "blob" {
                problems.append("\(label): error: cannot read file: not a regular file")
                continue
            }
            let blob = runData(git, ["-C", policies, "cat-file", "blob", object])
            guard blob.status == 0 else {
                problems.append("\(label): error: cannot read: \(String(decoding: blob.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))")
                continue
            }
            guard let text = String(validating: blob.stdout, as: UTF8.self) else {
                problems.append("\(label): error: file is not valid UTF-8")
                continue
            }
            files.append(PolicyFile(path: label, contents: text))
        }
        guard problems.isEmpty else {
            printError(problems.joined(separator: "\n"))
            throw ExitCode(1)
        }
        return PolicyLoader.parse(files, users: UserResolver.uid)
    }

    /// One record of `git ls-tree -z`: `MODE TYPE OBJECT<TAB>NAME`.
    struct TreeEntry {
        var mode: String, type: String, object: String, name: String

        init?(_ record: Data.SubSequence) {
            guard let tab = record.firstIndex(of: 0x09) else { return nil }
            let meta = String(decoding: record[..<tab], as: UTF8.self).split(separator: " ").map(String.init)
            guard meta.count == 3 else { return nil }
            (mode, type, object) = (meta[0], meta[1], meta[2])
            name = String(decoding: record[record.index(after: tab)...], as: UTF8.self)
        }
    }

    /// The repository path a symbolic link in directory `directory` (from the top, with a
    /// trailing `/` or empty) leads to, or nil when it leaves the repository (or is absolute).
    static func resolve(link target: String, in directory: String) -> String? {
        guard !target.hasPrefix("/") else { return nil }
        var parts = directory.split(separator: "/").map(String.init)
        for part in target.split(separator: "/") {
            switch part {
            case ".", "": continue
            case "..": if parts.isEmpty { return nil } else { parts.removeLast() }
            default: parts.append(String(part))
            }
        }
        return parts.joined(separator: "/")
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
        let r = runData(executable, arguments, input: input)
        return (r.status, String(decoding: r.stdout, as: UTF8.self), String(decoding: r.stderr, as: UTF8.self))
    }

    /// `run`, with the output as bytes.
    static func runData(_ executable: String, _ arguments: [String], input: String? = nil) -> (status: Int32, stdout: Data, stderr: Data) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let inPipe = Pipe()
        p.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        do { try p.run() } catch { return (127, Data(), Data("cannot run \(executable): \(error)".utf8)) }
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
        return (p.terminationStatus, outData, errData)
    }
}
