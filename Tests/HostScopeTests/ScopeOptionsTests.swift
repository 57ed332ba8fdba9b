import Foundation
import Testing

/// `--scope`, `ZONEWALL_SCOPE` and `--host-address`, through the built `zonewall` binary (`plan`: no kernel).
@Suite(.serialized)
struct ScopeOptionsTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let binary: String = {
        if let z = ProcessInfo.processInfo.environment["ZONEWALL"] { return z }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("zonewall").path
    }()

    /// Runs `zonewall` to completion; output through files. `ZONEWALL_*` comes only from `environment`.
    func zonewall(_ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let base = NSTemporaryDirectory() + "zw-scope-cmd-\(UUID().uuidString)"
        let out = base + ".out", err = base + ".err"
        // A file that could not be made fails opening it for the output below.
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: err) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ZONEWALL_") }.merging(environment) { $1 }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    var plan: [String] { ["plan", "--policies", Self.repoRoot + "/Policies"] }

    @Test func aBadScopeInTheEnvironmentIsTheSameErrorAsOnTheCommandLine() throws {
        let option = try zonewall(plan + ["--scope", "locl"])
        let env = try zonewall(plan, environment: ["ZONEWALL_SCOPE": "locl"])
        #expect(option.status == 1 && env.status == 1, "\(env)")
        #expect(option.stderr.contains("The value 'locl' is invalid for '--scope <all|local>'. Please provide one of 'all' and 'local'."))
        #expect(env.stderr.contains("is invalid for '--scope <all|local>'. Please provide one of 'all' and 'local'."), "\(env)")
        #expect(env.stderr.contains("'locl'"), "\(env)")
        // A good value still applies, and the option wins over the environment.
        let local = try zonewall(plan + ["--host-address", "192.0.2.1"], environment: ["ZONEWALL_SCOPE": "local"])
        #expect(local.status == 0, "\(local)")
        #expect(try zonewall(plan + ["--scope", "all"], environment: ["ZONEWALL_SCOPE": "locl"]).status == 0)
    }

    @Test func aHostAddressIsOneAddress() throws {
        for bad in ["203.0.113.0/24", "2001:db8::/64", "203.0.113.5/31", "host.example", "203.0.113.300"] {
            let o = try zonewall(plan + ["--scope", "local", "--host-address", bad])
            #expect(o.status == 1, "\(bad): \(o)")
            #expect(o.stderr.contains("--host-address '\(bad)' is not a single IPv4/IPv6 address"), "\(bad): \(o)")
        }
        for good in ["203.0.113.5", "203.0.113.5/32", "2001:db8::1", "2001:db8::1/128"] {
            let o = try zonewall(plan + ["--scope", "local", "--host-address", good])
            #expect(o.status == 0, "\(good): \(o)")
        }
    }
}

