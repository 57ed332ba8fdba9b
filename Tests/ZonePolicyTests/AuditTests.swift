import Testing
@testable import ZonePolicy

/// Audit mode and the log settings: parsing, and what `explain`/`test` report.
@Suite struct AuditTests {
    static let yaml = """
        zones:
          legacy: {members: [192.0.2.0/24], audit: true}
          db: {members: [192.0.2.5]}
          web: {members: [198.51.100.0/24]}
          api: {members: [203.0.113.0/24]}
        allow:
          - {from: web, to: api, ports: [tcp/443]}
        settings:
          log_denied: true
          log_group: 7
          log_rate: 250

        """

    static func policy(_ yaml: String = yaml) throws -> Policy {
        let result = parse(yaml)
        #expect(result.errors.isEmpty, "\(dump(result))")
        return try #require(result.policy)
    }

    @Test func parsesAuditAndLogSettings() throws {
        let p = try Self.policy()
        #expect(p.zone(named: "legacy")?.audit == true)
        #expect(p.zone(named: "web")?.audit == false)
        #expect(p.settings.logGroup == 7)
        #expect(p.settings.logRate == 250)
        #expect(p.settings.logTo == .nflog)
        #expect(!p.settings.audit)
        let defaults = try Self.policy("zones: {a: {members: [192.0.2.1]}}\n")
        #expect(defaults.settings.logGroup == Settings.defaultLogGroup)
        #expect(defaults.settings.logRate == Settings.defaultLogRate)
    }

    @Test func badLogSettingsArePreciseErrors() {
        let r = parse("settings:\n  log_group: 70000\n  log_rate: 0\n  log_to: syslog\n  audit: maybe\n")
        expectDiagnostic(r, line: 2, column: 14, message: "'log_group' must be an NFLOG group number")
        expectDiagnostic(r, line: 3, column: 13, message: "'log_rate' must be a number of packets per second")
        expectDiagnostic(r, line: 4, column: 11, message: "'log_to' must be nflog or kernel")
        #expect(r.errors.count == 4, "\(dump(r))")
        #expect(r.policy == nil)
    }

    @Test func deniedFlowsOfAnAuditZonePassAndSaySo() throws {
        let e = Evaluator(try Self.policy())
        // Either end in the audit zone: audited.
        let out = e.decide(from: .zone("legacy"), to: .zone("api"), spec: .ports(.tcp, 22...22))
        #expect(out.verdict == .deny && out.audited && out.passes)
        #expect(out.verdictText == "deny (audited: passes)")
        #expect(out.reason.contains("audit mode"))
        let into = e.decide(from: .zone("web"), to: .zone("legacy"), spec: .ports(.tcp, 22...22))
        #expect(into.audited && into.passes)
        let world = e.decide(from: .world, to: .zone("legacy"), spec: .icmpEcho)
        #expect(world.audited)
        // Between two enforced zones: denied as before.
        let enforced = e.decide(from: .zone("web"), to: .zone("api"), spec: .ports(.tcp, 22...22))
        #expect(enforced.verdict == .deny && !enforced.audited && !enforced.passes)
        #expect(enforced.verdictText == "deny")
        // Allowed flows are not audited.
        let allowed = e.decide(from: .zone("web"), to: .zone("api"), spec: .ports(.tcp, 443...443))
        #expect(allowed.verdict == .allow && !allowed.audited)
    }

    @Test func aNestedEnforcedZoneStaysEnforced() throws {
        let e = Evaluator(try Self.policy())
        // 192.0.2.5 is db (longest prefix), not legacy.
        let d = e.decide(from: .address(try #require(IPPrefix.parse("192.0.2.5"))), to: .endpoint(.zone("api")), spec: .ports(.tcp, 22...22))
        #expect(d.from == .zone("db") && !d.audited)
        let l = e.decide(from: .address(try #require(IPPrefix.parse("192.0.2.6"))), to: .endpoint(.zone("api")), spec: .ports(.tcp, 22...22))
        #expect(l.from == .zone("legacy") && l.audited)
    }

    @Test func settingsAuditAuditsEveryZone() throws {
        let p = try Self.policy("zones:\n  a: {members: [192.0.2.1]}\n  b: {members: [192.0.2.2]}\nsettings: {audit: true}\n")
        let d = Evaluator(p).decide(from: .zone("a"), to: .zone("b"), spec: .any)
        #expect(d.audited && d.passes)
        #expect(p.isAudited("a") && p.isAudited("b"))
    }
}
