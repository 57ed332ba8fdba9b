import ArgumentParser
import Conntrack
import Revocation
import ZonePolicy

/// `zonewall-lab conntrack-fill`: creates conntrack entries in a namespace, for the benchmark.
struct LabConntrackFillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conntrack-fill",
        abstract: "Create N established TCP and UDP conntrack entries between two prefixes, inside a namespace."
    )

    @Option(help: "Network namespace (as `ip netns add` names it).")
    var netns: String

    @Option(help: "How many entries.")
    var count = 100_000

    @Option(help: "Source addresses: this IPv4 /24 (varied with the source port).")
    var source = "192.0.2.0"

    @Option(help: "Destination addresses: this IPv4 /24.")
    var destination = "198.51.100.0"

    func run() throws {
        guard let src = IPPrefix.parse(source), let dst = IPPrefix.parse(destination) else {
            throw ValidationError("--source and --destination are IPv4 addresses")
        }
        let table = try NetlinkConntrack(namespace: netns)
        for i in 0..<count {
            let e = ConntrackEntry(family: .ipv4, proto: i % 4 == 0 ? 17 : 6,
                                   source: src.address + UInt128(1 + i % 250), destination: dst.address + UInt128(1 + (i / 250) % 250),
                                   sourcePort: UInt16(10_000 + i / 62_500), destinationPort: UInt16(5000 + i % 7))
            try table.create(e)
        }
    }
}
