import Foundation
import Testing
import ZonePolicy
@testable import PolicyReview

/// Review output for the bundled policy and an edit of it, compared with checked-in files.
/// Set ZONEWALL_UPDATE_GOLDEN=1 to rewrite them.
@Suite struct ReviewGoldenTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// The bundled policy, edited the way a pull request might: a new flow, a narrowed one, a
    /// member moved between nested zones, a zone added.
    static func edited(_ files: [String: String]) -> [String: String] {
        var f = files
        f["Policies/rules.yaml"] = f["Policies/rules.yaml"]!
            .replacingOccurrences(of: "ports: [tcp/80, tcp/443, icmp]", with: "ports: [tcp/443, icmp]")
            .replacingOccurrences(of: "ports: [tcp/443, tcp/8000-8099]", with: "ports: [tcp/443, tcp/8000-8049, tcp/8090-8199]")
            .replacingOccurrences(of: "\nsettings:", with: "\n  - from: metrics\n    to: [web, api]\n    ports: [tcp/9100]\n\nsettings:")
        f["Policies/zones.yaml"] = f["Policies/zones.yaml"]!
            .replacingOccurrences(of: "members: [203.0.113.5, 203.0.113.6, \"2001:db8:30::5\"]",
                                  with: "members: [203.0.113.5, 203.0.113.6, 203.0.113.7, \"2001:db8:30::5\"]")
            + "  metrics:\n    members: [198.51.100.50]\n"
        return f
    }

    func check(_ text: String, _ name: String) throws {
        let url = Self.goldenDirectory.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["ZONEWALL_UPDATE_GOLDEN"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        let golden = try String(contentsOf: url, encoding: .utf8)
        #expect(text == golden, "output differs from Golden/\(name); if intended, rerun with ZONEWALL_UPDATE_GOLDEN=1")
    }

    func diff() throws -> PolicyDiff {
        let files = try bundledPolicyFiles()
        return PolicyDiff(from: load(files), to: load(Self.edited(files)))
    }

    @Test func diffText() throws { try check(diff().text, "diff.txt") }
    @Test func diffMarkdown() throws { try check(diff().markdown, "diff.md") }
    @Test func diffMermaid() throws { try check(diff().mermaid, "diff.mmd") }
    @Test func diffJSON() throws { try check(diff().json.rendered, "diff.json") }
    @Test func graphMermaid() throws { try check(PolicyGraph(load(try bundledPolicyFiles())).mermaid, "graph.mmd") }
    @Test func graphDot() throws { try check(PolicyGraph(load(try bundledPolicyFiles())).dot, "graph.dot") }

    @Test func goldenDiffSaysWhatTheEditDid() throws {
        let d = try diff()
        #expect(d.summary == "opens 7 flows, closes 13, 3 member changes, adds 1 zone")
        #expect(d.closed.map { "\($0.pair) \($0.ports)" } == ["web → api [\"tcp/8050-8089\"]", "world → web [\"tcp/80\"]"])
        #expect(d.opened.map { "\($0.pair) \($0.ports)" }
                == ["metrics → api [\"tcp/9100\"]", "metrics → web [\"tcp/9100\"]", "web → api [\"tcp/8100-8199\"]"])
        #expect(d.membersAdded.map { "\($0.zone) \($0.member)" } == ["db 203.0.113.7", "metrics 198.51.100.50"])
        #expect(d.membersRemoved.map { "\($0.zone) \($0.member)" } == ["workers 203.0.113.7"])
        // The moved address takes db's traffic and leaves workers': what reaches it and what it reaches change.
        #expect(d.openedForMoved.map { "\($0.peer) → \($0.members) \($0.ports)" }.filter { $0.contains("203.0.113.7") }
                == ["api → [\"203.0.113.7\"] [\"tcp/5432\"]", "workers → [\"203.0.113.7\"] [\"tcp/5432\"]"])
        #expect(d.closedForMoved.filter { $0.members == ["203.0.113.7"] && $0.outbound }.map { "\($0.peer) \($0.ports)" }
                == ["db [\"tcp/5432\"]", "dns [\"tcp/53\", \"udp/53\"]", "metrics [\"tcp/443\"]", "world [\"tcp/443\"]"])
        // metrics' new member was world's: 203.0.113.7 reached it on tcp/443 as it reached world.
        #expect(d.closedForMoved.first { $0.members == ["203.0.113.7"] && $0.peer == .zone("metrics") }?.peerLabel == "metrics (was world)")
        #expect(d.opens)
    }

    @Test func zoneFilterKeepsTheZoneAndItsNeighbours() throws {
        let g = PolicyGraph(load(try bundledPolicyFiles()), zone: "db")
        #expect(g.nodes.map(\.description) == ["admin", "api", "db", "workers"])
        #expect(g.edges.allSatisfy { $0.pair.from == .zone("db") || $0.pair.to == .zone("db") })
        #expect(g.dot.contains("\"api\" -> \"db\" [label=\"tcp/5432\"];"))
    }

    @Test func auditZonesAreDrawnDashedThroughTheHook() throws {
        let g = PolicyGraph(load(try bundledPolicyFiles()), isAudit: { $0.name == "admin" })
        #expect(g.dot.contains("\"admin\" [style=\"rounded,dashed\"];"))
        #expect(g.mermaid.contains("classDef audit stroke-dasharray: 5 5"))
        #expect(!PolicyGraph(load(try bundledPolicyFiles())).dot.contains("dashed"))
    }
}
