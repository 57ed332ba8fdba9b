import Foundation
import Glibc

/// The zonewall binary built next to the test bundle (or `$ZONEWALL`).
public let zonewallBinary: String = {
    if let z = ProcessInfo.processInfo.environment["ZONEWALL"] { return z }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("zonewall").path
}()

/// Where a command's standard output goes.
public enum CommandOutput {
    /// A file opened for writing (`/dev/full`, a temporary file).
    case file(String)
    /// A pipe whose reading end is already closed: every write fails with EPIPE (SIGPIPE is
    /// ignored in the child, as a parent that ignores it passes on).
    case closedPipe
}

/// What a finished command did: its exit status (128 + signal when a signal ended it) and
/// standard error.
public struct CommandResult: CustomStringConvertible {
    public var status: Int32
    public var stderr: String
    public var description: String { "exit \(status), stderr: \(stderr)" }
}

/// Runs `zonewall ARGS…` to completion with standard output sent to `output`.
public func runZonewall(_ args: [String], stdout output: CommandOutput) throws -> CommandResult {
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("zw-out-\(UInt64.random(in: 0...UInt64.max)).err").path
    defer { unlink(errPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var pipeFDs: [Int32] = [-1, -1]
    switch output {
    case .file(let path):
        posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    case .closedPipe:
        guard pipe(&pipeFDs) == 0 else { throw CommandError("pipe: \(String(cString: strerror(errno)))") }
        close(pipeFDs[0])
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    }
    defer { if pipeFDs[1] >= 0 { close(pipeFDs[1]) } }

    // SIGPIPE ignored in the child, every other signal at its default.
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t(), defaults = sigset_t()
    sigemptyset(&none)
    sigfillset(&defaults)
    sigdelset(&defaults, SIGPIPE)
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    // Ignored here too, so that the child inherits it ignored (and a closed pipe never ends this process).
    signal(SIGPIPE, SIG_IGN)

    let argv = ([zonewallBinary] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, zonewallBinary, &actions, &attr, argv, environ)
    guard rc == 0 else { throw CommandError("posix_spawn \(zonewallBinary): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let stderr = FileManager.default.contents(atPath: errPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    return CommandResult(status: code, stderr: stderr)
}

/// A directory with the given files, deleted afterwards.
public func withDirectory<T>(_ files: [String: String], _ body: (String) throws -> T) throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-out-\(UInt32.random(in: 0...UInt32.max))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (name, text) in files { try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8) }
    return try body(dir)
}

public struct CommandError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
