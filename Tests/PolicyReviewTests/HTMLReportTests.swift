import Foundation
import Testing
import ZonePolicy
@testable import PolicyReview

/// The HTML report's content, without a browser (Tests/Review/review.sh loads it in Chromium).
@Suite struct HTMLReportTests {
    func cell(_ html: String, from: String, to: String) -> String? {
        let marker = "data-from=\"\(from)\" data-to=\"\(to)\""
        guard let r = html.range(of: marker) else { return nil }
        let start = html[..<r.lowerBound].range(of: "<td", options: .backwards)!.lowerBound
        let end = html[r.upperBound...].range(of: "</td>")!.upperBound
        return String(html[start..<end])
    }

    @Test func matrixCellsCarryStatePortsAndTheDecidingRule() throws {
        let html = HTMLReport(policy: load(try bundledPolicyFiles())).html
        let allowed = try #require(cell(html, from: "api", to: "db"))
        #expect(allowed.contains("data-state=\"allow\""))
        #expect(allowed.contains("data-rule=\"Policies/rules.yaml:11 (tcp/5432)\""), "\(allowed)")
        #expect(allowed.contains(">tcp/5432</td>"))
        let denied = try #require(cell(html, from: "web", to: "db"))
        #expect(denied.contains("data-state=\"deny\""))
        #expect(try #require(cell(html, from: "world", to: "host")).contains("data-state=\"ungoverned\""))
    }

    @Test func selfContainedWithNoFetches() throws {
        let html = HTMLReport(policy: load(try bundledPolicyFiles())).html
        for needle in ["src=", "href=", "@import", "url(", "http://", "fetch("] {
            #expect(!html.contains(needle), "report references \(needle)")
        }
        #expect(html.contains("default-src 'none'"))
    }

    @Test func diffIsShownAndMarkedInTheMatrix() throws {
        let files = try bundledPolicyFiles()
        let new = load(ReviewGoldenTests.edited(files))
        let html = HTMLReport(policy: new, diff: PolicyDiff(from: load(files), to: new), baseName: "origin/main").html
        #expect(html.contains("Changes against origin/main: opens 7 flows, closes 13"))
        #expect(try #require(cell(html, from: "metrics", to: "web")).contains("data-change=\"opened\""))
        #expect(html.contains("<tr data-zone=\"metrics\">"))
        // The moved address's traffic is listed with the flows, as text and markdown list it.
        #expect(html.contains("<tr><td>203.0.113.7 (was workers, now db)</td><td>metrics (was world)</td><td><code>tcp/443</code></td><td>member change</td></tr>"),
                "\(html)")
    }

    /// Failsafe ports and audit mode change what passes: the matrix shows and outlines those cells.
    @Test func failsafeAndAuditAreMarkedInTheMatrix() throws {
        let zones = "zones:\n  web: {members: [192.0.2.1]}\n  db: {members: [192.0.2.2]}\n  legacy: {members: [192.0.2.3]}\n"
        let rules = "allow:\n  - {from: web, to: db, ports: [tcp/5432]}\n"
        let old = load(zones + rules)
        let new = load(zones.replacingOccurrences(of: "legacy: {members: [192.0.2.3]}", with: "legacy: {members: [192.0.2.3], audit: true}")
                       + rules + "settings:\n  failsafe: [tcp/3306]\n")
        let diff = PolicyDiff(from: old, to: new)
        let html = HTMLReport(policy: new, diff: diff, baseName: "main").html
        let toHost = try #require(cell(html, from: "web", to: "host"))
        #expect(toHost.contains("data-state=\"allow\"") && toHost.contains("data-change=\"opened\"") && toHost.contains(">tcp/3306</td>"), "\(toHost)")
        #expect(toHost.contains("settings.failsafe"))
        let audited = try #require(cell(html, from: "web", to: "legacy"))
        #expect(audited.contains("data-state=\"audit\"") && audited.contains("data-change=\"opened\""), "\(audited)")
        let unchanged = try #require(cell(html, from: "web", to: "db"))
        #expect(!unchanged.contains("data-change"))
        #expect(html.contains("id=\"failsafe-opened\"") && html.contains("id=\"audit-added\""))
        // The opened web → host row names its cause, the failsafe ports, not an empty rule cell.
        #expect(html.contains("<tr><td>web</td><td>host</td><td><code>tcp/3306</code></td><td><code>settings.failsafe "), "\(html)")

        let back = HTMLReport(policy: old, diff: PolicyDiff(from: new, to: old), baseName: "main").html
        #expect(try #require(cell(back, from: "web", to: "host")).contains("data-change=\"closed\""))
        let enforced = try #require(cell(back, from: "legacy", to: "db"))
        #expect(enforced.contains("data-state=\"deny\"") && enforced.contains("data-change=\"closed\""), "\(enforced)")
    }

    @Test func textIsEscaped() {
        let p = load("zones:\n  web: {description: \"<b>&'\\\"\", members: [192.0.2.1]}\nallow:\n  - {from: world, to: web, ports: [tcp/443]}\n")
        let html = HTMLReport(policy: p).html
        #expect(html.contains("&lt;b&gt;&amp;&#39;&quot;"))
        #expect(!html.contains("<b>&"))
    }
}
