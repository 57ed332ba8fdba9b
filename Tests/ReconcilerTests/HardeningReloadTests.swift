import Foundation
import Glibc
import Logging
import Reconciler
import Ruleset
import Testing
import ZonePolicy

/// A reload refused by the hardening checks keeps the last good policy in force and says why.
@Suite struct HardeningReloadTests {
    let logger = Logger(label: "test")
    static let policy = """
        zones:
          web: {members: [192.0.2.10]}
          db: {members: [198.51.100.20]}
        allow:
          - {from: web, to: db, ports: [tcp/5432]}

        """

    func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-rt-hard-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        try Self.policy.write(toFile: dir + "/p.yaml", atomically: false, encoding: .utf8)
        return dir
    }

    @Test func aReloadPastALimitKeepsTheLastGoodPolicy() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kernel = InMemoryKernel()
        let r = Reconciler(kernel: kernel, policyDirectory: dir, logger: logger, strictModes: .system)
        try await r.start()
        let good = try #require(kernel.table)
        let deep = "zones: {web: {members: [192.0.2.10]}}\nextra: " + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "\n"
        try deep.write(toFile: dir + "/p.yaml", atomically: false, encoding: .utf8)
        #expect(await r.reload("too deep") == nil)
        #expect(kernel.table == good)
        let state = await r.state
        #expect(state.lastErrorDiagnostics.contains { $0.contains("collections nested more than 32 deep") }, "\(state.lastErrorDiagnostics)")
    }

    @Test func aReloadOfAnInsecurePolicyKeepsTheLastGoodPolicy() async throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kernel = InMemoryKernel()
        let r = Reconciler(kernel: kernel, policyDirectory: dir, logger: logger, strictModes: .system)
        try await r.start()
        let good = try #require(kernel.table)
        try Self.policy.replacingOccurrences(of: "tcp/5432", with: "tcp/5433").write(toFile: dir + "/p.yaml", atomically: false, encoding: .utf8)
        chmod(dir + "/p.yaml", 0o646)
        #expect(await r.reload("insecure") == nil)
        #expect(kernel.table == good)
        let state = await r.state
        #expect(state.lastErrorDiagnostics.first?.contains("insecure permissions on policy file: writable by others") == true,
                "\(state.lastErrorDiagnostics)")
        chmod(dir + "/p.yaml", 0o644)
        #expect(await r.reload("fixed") != nil)
        #expect(kernel.table != good)
        #expect(await r.state.lastError == nil)
    }
}
