import ArgumentParser
import ZonePolicy

/// `zonewall-lab plan`: what `scripts/lab` builds from a policy.
///
/// One concrete member address per zone and family that classifies into that zone (longest
/// prefix wins, so a nested zone's addresses are avoided), two unzoned addresses for the
/// `world` host and the enforcing router, and the ports worth probing. Only documentation
/// ranges are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
struct LabPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Print the namespace lab's addresses and probes for a policy (used by scripts/lab)."
    )

    @Option(help: "Directory of *.yaml policy files.")
    var policies: String

    func run() throws {
        let result = PolicyLoader.load(directory: policies)
        guard let policy = result.policy else {
            for d in result.errors { printError(d.description) }
            throw ExitCode(1)
        }
        print(LabPlan(policy).text, terminator: "")
    }
}

/// The lab's addresses and probes for a policy; pure.
struct LabPlan {
    static let v4Ranges: [IPPrefix] = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"].map { IPPrefix.parse($0)! }
    static let v6Range = IPPrefix.parse("2001:db8::/32")!

    /// A protocol and port to probe; `icmp` has no port.
    struct Probe: Hashable, Comparable {
        var proto: String
        var port: Int
        var spec: String { proto == "icmp" ? "icmp" : "\(proto)/\(port)" }
        static func < (a: Probe, b: Probe) -> Bool { (a.proto, a.port) < (b.proto, b.port) }
    }

    var router: [AddressFamily: IPPrefix] = [:]
    var world: [AddressFamily: IPPrefix] = [:]
    var zones: [(name: String, addresses: [AddressFamily: IPPrefix])] = []
    var probes: [Probe] = []
    var notes: [String] = []
    var denied: DeniedAction

    init(_ policy: Policy) {
        denied = policy.settings.denied
        let classifier = Classifier(policy)
        func zone(_ a: IPPrefix) -> String? { classifier.zone(of: a.family, a.address) }
        func host(_ f: AddressFamily, _ a: UInt128) -> IPPrefix { IPPrefix(family: f, address: a, length: f.bits) }

        for f in AddressFamily.allCases {
            let ranges = f == .ipv4 ? Self.v4Ranges : [Self.v6Range]
            var preferred: [UInt128] = f == .ipv4
                ? ranges.flatMap { [$0.first + 200, $0.first + 201] }
                : [Self.v6Range.first | (0xff << 80) | 0x200, Self.v6Range.first | (0xff << 80) | 1]
            preferred += f == .ipv4 ? ranges.flatMap { r in (1...254).map { r.first + UInt128($0) } }
                : (1...4096).map { Self.v6Range.first | (0xffff << 80) | UInt128($0) }
            let unzoned = preferred.lazy.map { host(f, $0) }.filter { zone($0) == nil }
            let two = Array(unzoned.prefix(2))
            if two.count == 2 {
                world[f] = two[0]
                router[f] = two[1]
            } else {
                notes.append("no two unzoned \(f) addresses in the documentation ranges: \(f) is not in the lab")
            }
        }

        for z in policy.zones {
            var picked: [AddressFamily: IPPrefix] = [:]
            for f in AddressFamily.allCases where router[f] != nil {
                let ranges = f == .ipv4 ? Self.v4Ranges : [Self.v6Range]
                search: for m in z.members.map(\.value) where m.family == f {
                    // The part of the member inside a documentation range.
                    guard let r = ranges.first(where: { $0.contains(m) || m.contains($0) }) else { continue }
                    let p = r.contains(m) ? m : r
                    var candidates = [p.first + 1, p.first + (p.last - p.first) / 2, p.last - 1, p.first, p.last]
                    let span = min(p.last - p.first, 4096)
                    candidates += (0...span).map { p.first + $0 }
                    for c in candidates where p.contains(c) {
                        let a = host(f, c)
                        if zone(a) == z.name { picked[f] = a; break search }
                    }
                }
            }
            if picked.isEmpty {
                notes.append("zone \(z.name) has no member address in the documentation ranges that classifies into it: not in the lab")
            } else {
                zones.append((z.name, picked))
            }
        }

        var set: Set<Probe> = [Probe(proto: "icmp", port: 0), Probe(proto: "tcp", port: 2), Probe(proto: "udp", port: 2)]
        for r in policy.rules {
            for spec in r.ports {
                switch spec {
                case .ports(let p, let range) where p != .sctp:
                    set.insert(Probe(proto: p.rawValue, port: Int(range.lowerBound)))
                    // A range's both ends and the port just past it.
                    if range.lowerBound != range.upperBound {
                        set.insert(Probe(proto: p.rawValue, port: Int(range.upperBound)))
                        if range.upperBound < 65535 { set.insert(Probe(proto: p.rawValue, port: Int(range.upperBound) + 1)) }
                    }
                case .wholeProtocol(let p) where p != .sctp:
                    set.insert(Probe(proto: p.rawValue, port: 33333))
                case .ports, .wholeProtocol:
                    notes.append("sctp is not probed")
                case .icmpEcho, .any:
                    break
                }
            }
        }
        probes = set.sorted()
    }

    var text: String {
        func a(_ p: IPPrefix?) -> String { p?.description ?? "-" }
        var out = "mode \(denied.rawValue)\n"
        out += "router \(a(router[.ipv4])) \(a(router[.ipv6]))\n"
        out += "world \(a(world[.ipv4])) \(a(world[.ipv6]))\n"
        for z in zones { out += "zone \(z.name) \(a(z.addresses[.ipv4])) \(a(z.addresses[.ipv6]))\n" }
        for p in probes { out += "probe \(p.proto) \(p.port) \(p.spec)\n" }
        for n in Set(notes).sorted() { out += "note \(n)\n" }
        return out
    }
}
