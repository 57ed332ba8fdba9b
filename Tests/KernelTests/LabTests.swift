import Foundation
import Testing

/// Real packets: `scripts/lab` builds a router namespace enforcing the policy with zonewall,
/// one host namespace per zone and a `world` host, then connects every client to every
/// server on every probed port (TCP, UDP, ping; IPv4 and IPv6; the router itself as `host`)
/// and compares each outcome with `zonewall explain`. Serialized: the probes are timed.
@Suite("Namespace lab: connections succeed exactly when the policy allows", .serialized)
struct LabTests {
    static let lab = "\(repoRoot)/scripts/lab"
    static let env = ["ZONEWALL": zonewallBinary, "LAB_JOBS": "48"]

    /// Drop mode, nested prefixes in both families, a port range, world/host in both directions.
    static let dropPolicy = """
        zones:
          lan:
            members: [198.51.100.0/25, "2001:db8:100::/48"]
          printers:
            description: inside lan; wins by longest prefix
            members: [198.51.100.64/28, "2001:db8:100:5::/64"]
          servers:
            members: [203.0.113.128/25, "2001:db8:200::/48"]
          backup:
            description: inside servers
            members: [203.0.113.200, "2001:db8:200::b"]
        allow:
          - from: lan
            to: servers
            ports: [tcp/443, tcp/1000-1010, udp/123]
          - from: lan
            to: printers
            ports: [tcp/631, icmp]
          - from: servers
            to: backup
            ports: [tcp/873]
          - from: backup
            to: world
            ports: [tcp/443]
          - from: world
            to: servers
            ports: [tcp/443]
          - from: host
            to: [servers, backup]
            ports: [tcp/22]
          - from: lan
            to: host
            ports: [udp/53, icmp]
        settings:
          denied: drop
        """

    func matrix(_ policies: String) throws -> Outcome {
        let o = try exec([Self.lab, "matrix", "--quiet", "--policies", policies], environment: Self.env)
        print(o.stdout.split(separator: "\n").filter { $0.hasPrefix("lab:") || $0.hasPrefix("zonewall:") }.joined(separator: "\n"))
        return o
    }

    @Test(needsRoot) func examplePolicy() throws {
        if skipUnlessRoot() { return }
        let o = try matrix("\(repoRoot)/Policies")
        #expect(o.status == 0, "\(o)")
        #expect(o.stdout.contains(" 0 disagree with zonewall explain"), "\(o.stdout)")
        #expect(o.stdout.contains("(mode reject)"))
    }

    @Test(needsRoot) func dropModeNestedPrefixesIPv6() throws {
        if skipUnlessRoot() { return }
        try withPolicy(["policy.yaml": Self.dropPolicy]) { dir in
            let o = try matrix(dir)
            #expect(o.status == 0, "\(o)")
            #expect(o.stdout.contains(" 0 disagree with zonewall explain"), "\(o.stdout)")
            #expect(o.stdout.contains("(mode drop)"))
        }
    }

    /// A policy that does not load, and a batch the kernel refuses, leave the table byte for
    /// byte as it was, and every connection behaves exactly as before.
    @Test(needsRoot) func failedAppliesKeepTrafficFlowing() throws {
        if skipUnlessRoot() { return }
        let id = String(format: "t%05x", UInt32.random(in: 0...0xfffff))
        defer { _ = try? exec([Self.lab, "down", id], environment: Self.env) }
        let up = try exec([Self.lab, "up", "--id", id, "--policies", "\(repoRoot)/Policies"], environment: Self.env)
        try #require(up.status == 0, "\(up)")
        try #require(try exec([Self.lab, "apply", id], environment: Self.env).status == 0)
        let router = "zw-\(id)-r"
        let before = try #require(try listing(router))
        let first = "/tmp/zonewall-lab/\(id)/first.tsv", second = "/tmp/zonewall-lab/\(id)/second.tsv"
        let p1 = try exec([Self.lab, "probe", id, "--quiet", "--out", first], environment: Self.env)
        #expect(p1.status == 0, "\(p1)")

        var files = try examplePolicyFiles()
        files["rules.yaml"] = files["rules.yaml"]! + "\n  - from: nosuchzone\n    to: web\n    ports: [tcp/1]\n"
        try withPolicy(files) { bad in
            let o = try zonewall(["apply", "--policies", bad, "--netns", router])
            #expect(o.status == 1, "\(o)")
        }
        // Opening web to everything on the world side would change traffic, were it applied.
        var wider = try examplePolicyFiles()
        wider["rules.yaml"] = wider["rules.yaml"]!.replacingOccurrences(of: "ports: [tcp/80, tcp/443, icmp]", with: "ports: [any]")
        try withPolicy(wider) { dir in
            let o = try zonewall(["apply", "--policies", dir, "--netns", router], environment: ["ZONEWALL_FAULT": "reject"])
            #expect(o.status == 2, "\(o)")
        }
        #expect(try listing(router) == before)

        let p2 = try exec([Self.lab, "probe", id, "--quiet", "--out", second], environment: Self.env)
        #expect(p2.status == 0, "\(p2)")
        // Same cells, same outcome (allowed/blocked and how).
        func outcomes(_ path: String) throws -> [String] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
                let f = $0.split(separator: "\t")
                return f[0...6].joined(separator: " ")
            }
        }
        let a = try outcomes(first), b = try outcomes(second)
        #expect(a.count > 1000)
        #expect(a == b)
    }
}
