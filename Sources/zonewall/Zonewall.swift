import ArgumentParser
import CGlibc
import Foundation

/// `zonewall`: isolation zones for the services on a host, enforced with nftables.
@main
struct Zonewall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zonewall",
        abstract: "Isolation zones for the services on a host, compiled to nftables and kept in force.",
        discussion: """
            Exit codes: 0 success (explain: allowed), 1 invalid policy or usage, 2 kernel error, \
            3 explain: denied, 4 status: out of sync, \
            5 diff: the policy's meaning changed.

            Kernel commands (apply, status, remove, check --kernel, run) take --netns NAME to work \
            inside a named network namespace; scripts/demo, scripts/lab and the kernel tests always use it.
            """,
        version: ZonewallVersion.current,
        subcommands: [
            CheckCommand.self, PlanCommand.self, ExplainCommand.self, TestCommand.self,
            ApplyCommand.self, StatusCommand.self, RemoveCommand.self,
            RunCommand.self, RevokeCommand.self, ConfirmCommand.self, ConfirmGuardCommand.self,
            DiffCommand.self, GraphCommand.self, ReportCommand.self, SchemaCommand.self,
            LogCommand.self, SuggestCommand.self, MemberCommand.self,
        ]
    )

    /// Usage errors are bad input too: they exit 1 like every other, with the parser's message.
    static func main() async {
        // Before any other thread exists: two malloc arenas instead of glibc's eight per CPU, so
        // memory freed on one thread is reused by the others (the daemon runs for months).
        _ = mallopt(M_ARENA_MAX, 2)
        // Blocks of 128 KiB and more get mappings of their own, returned to the system when freed.
        // By default glibc raises this threshold to the largest block freed so far, and the
        // multi-MB element buffers and scratch of a large policy then stay in the heap: a daemon
        // with the 10,000-zone policy sat at 80 MB instead of 62, and peaked at 136 MB instead
        // of 111 on a reload.
        _ = mallopt(M_MMAP_THRESHOLD, 128 << 10)
        do {
            try checkHelpTopic(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(fullMessage(for: error))
                Foundation.exit(1)
            }
            // Output lost on the way out outranks the command's own status (diff's 5, explain's 3).
            if let status = error as? ExitCode, case let final = StandardOutput.finish(status.rawValue), final != status.rawValue {
                Foundation.exit(final)
            }
            exit(withError: error)
        }
        // print() buffers: what it could not write must not end in exit 0.
        let status = StandardOutput.finish(0)
        if status != 0 { Foundation.exit(status) }
    }
}

extension Zonewall {
    /// `zonewall help NAME` for a NAME that is no subcommand: the parser would print the
    /// overview and exit 0, as if the topic had been found.
    static func checkHelpTopic(_ arguments: [String]) throws {
        guard arguments.first == "help", let topic = arguments.dropFirst().first, !topic.hasPrefix("-") else { return }
        let names = configuration.subcommands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
        guard !names.contains(topic), topic != "help" else { return }
        throw ValidationError("unknown subcommand '\(topic)'; the subcommands are \(names.joined(separator: ", "))")
    }
}

/// Options every policy-reading command shares.
struct PolicyOptions: ParsableArguments {
    @Option(name: .long, help: "Directory of *.yaml policy files.")
    var policies: String = Self.defaultDirectory

    /// `policies` from `/`, symlinks kept (a daemon follows the link where it leads now): what
    /// is recorded for other commands, which may run in another directory.
    var absolutePolicies: String { URL(fileURLWithPath: policies).standardizedFileURL.path }

    static let defaultDirectory = "/etc/zonewall"

    func validate() throws {
        // An empty path would be reported as ": error: …", with no file to look at.
        guard !policies.isEmpty else { throw ValidationError("--policies must name a directory, not be empty") }
    }
}

/// Writes to standard error; a standard error that cannot be written is ignored (it has
/// nowhere to be reported), never a crash as `FileHandle.write` would make it.
func printError(_ text: String) {
    _ = writeAll(text + "\n", to: STDERR_FILENO)
}

/// Writes all of `text` to `fd`, retrying after EINTR; the errno of a failed write, else nil.
/// A native string's bytes are written where they are; a bridged one is copied first.
func writeAll(_ text: String, to fd: Int32) -> Int32? {
    func all(_ buf: UnsafeRawBufferPointer) -> Int32? {
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            off += n
        }
        return nil
    }
    return text.utf8.withContiguousStorageIfAvailable { all(UnsafeRawBufferPointer($0)) }
        ?? Array(text.utf8).withUnsafeBytes { all($0) }
}
