import Conntrack
import Foundation
import Revocation
import Testing

private let isRoot = getuid() == 0

/// ctnetlink for real, in a network namespace of the test's own.
@Suite("NetlinkConntrack in network namespaces")
struct NetlinkConntrackTests {
    static func sh(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.executableLoad) }
    }

    static func entry(_ i: Int, v6: Bool = false) -> ConntrackEntry {
        let source: UInt128 = v6 ? (UInt128(0x2001_0db8) << 96 | UInt128(i)) : UInt128(0xC000_0200 | UInt32(i % 200 + 1))
        let destination: UInt128 = v6 ? (UInt128(0x2001_0db8) << 96 | 0xffff) : UInt128(0xC633_6407)  // 198.51.100.7
        return ConntrackEntry(family: v6 ? .ipv6 : .ipv4, proto: 6, source: source, destination: destination,
                              sourcePort: UInt16(10_000 + i), destinationPort: 443)
    }

    /// Deletes go a thousand to a datagram: every one of several datagrams' entries is gone,
    /// the others stay, and entries that do not exist (any more) are not errors.
    @Test(.enabled(if: isRoot, "needs root (network namespaces + ctnetlink)")) func batchedDeletesDeleteExactlyTheirEntries() throws {
        let ns = "zw-ct-\(UInt32.random(in: 0...UInt32.max))"
        try Self.sh(["ip", "netns", "add", ns])
        defer { try? Self.sh(["ip", "netns", "delete", ns]) }
        let table = try NetlinkConntrack(namespace: ns)
        // The count is this namespace's, not the host's nor another namespace's: an empty table
        // counts 0, and its scan (which then skips the dump) finds nothing.
        let other = "zw-ct-\(UInt32.random(in: 0...UInt32.max))"
        try Self.sh(["ip", "netns", "add", other])
        defer { try? Self.sh(["ip", "netns", "delete", other]) }
        let neighbour = try NetlinkConntrack(namespace: other)
        for i in 0..<3 { try neighbour.create(Self.entry(9_000 + i)) }
        #expect(try neighbour.entryCount() == 3)
        #expect(try table.entryCount() == 0)
        var none = 0
        try table.scan { _ in none += 1 }
        #expect(none == 0)

        let all = (0..<2_600).map { Self.entry($0, v6: $0 % 3 == 0) }
        for e in all { try table.create(e) }
        #expect(try table.entryCount() == 2_600)
        func key(_ e: ConntrackEntry) -> String { "\(e.family) \(e.source) \(e.sourcePort)" }
        var scanned: [ConntrackEntry] = []
        try table.scan { scanned.append($0) }
        #expect(Set(scanned.map(key)) == Set(all.map(key)))

        // The kernel's entries carry their ids; delete 2,100 of them (three datagrams), plus
        // five that never existed.
        let doomed = scanned.filter { $0.sourcePort < 12_100 }
        #expect(doomed.count == 2_100)
        let ghosts = (5_000..<5_005).map { Self.entry($0) }
        #expect(try table.delete(doomed + ghosts) == 2_100)
        var left: [ConntrackEntry] = []
        try table.scan { left.append($0) }
        #expect(Set(left.map(key)) == Set(all.filter { $0.sourcePort >= 12_100 }.map(key)))
        #expect(try table.entryCount() == 500)
        // Deleting them again deletes nothing and is no error.
        #expect(try table.delete(doomed) == 0)
    }
}
