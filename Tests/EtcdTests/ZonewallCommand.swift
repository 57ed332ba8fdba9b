import Foundation

/// The zonewall binary built next to the test bundle (or `$ZONEWALL`).
let zonewallBinary: String = {
    if let z = ProcessInfo.processInfo.environment["ZONEWALL"] { return z }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("zonewall").path
}()

/// What a finished `zonewall` run did.
struct CommandOutcome: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

/// Runs `zonewall` with `args` to completion (killed after `seconds`), output through files;
/// `environment` is added to this process's, and a nil value removes a variable.
func zonewall(_ args: [String], environment: [String: String?] = [:], seconds: Double = 30) throws -> CommandOutcome {
    let base = NSTemporaryDirectory() + "zw-etcd-cmd-\(UUID().uuidString)"
    let out = base + ".out", err = base + ".err"
    // A file that could not be made fails opening it for the output below.
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: err) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: zonewallBinary)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ZONEWALL_") }
    for (k, v) in environment { env[k] = v }
    p.environment = env
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
    try p.run()
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning { p.terminate(); p.waitUntilExit() }
    p.waitUntilExit()
    return CommandOutcome(status: p.terminationStatus,
                          stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}
