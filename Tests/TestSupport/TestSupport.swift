import Foundation

/// SplitMix64: a tiny deterministic PRNG, so generated test cases are reproducible by seed.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `nft -j` output without handles, counter values and version info, its objects in one order:
/// what two kernels holding the same rule set must agree on.
///
/// The kernel lists a table's chains and sets in the order they were made, which means nothing
/// to a packet: a staged build (`Transaction.stages`) makes them in another order than `nft -f`
/// of the plan does. So the objects are sorted by kind and name; rules stay in their order
/// within each chain, which is what decides.
public func normalizedJSON(_ text: String) throws -> NSObject {
    func strip(_ v: Any) -> Any {
        if let d = v as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, x) in d where k != "handle" && k != "metainfo" {
                out[k] = k == "counter" ? "counter" : strip(x)
            }
            return out
        }
        if let a = v as? [Any] { return a.map(strip).filter { !(($0 as? [String: Any])?.isEmpty ?? false) } }
        return v
    }
    func sortKey(_ object: Any) -> (Int, String) {
        guard let d = object as? [String: Any], let (kind, body) = d.first, d.count == 1 else { return (9, "") }
        let fields = body as? [String: Any] ?? [:]
        let rank = ["table": 0, "chain": 1, "set": 2, "map": 2, "rule": 3][kind] ?? 4
        let name = (kind == "rule" ? fields["chain"] : fields["name"]) as? String ?? ""
        return (rank, "\(kind) \(name)")
    }
    var json = try JSONSerialization.jsonObject(with: Data(text.utf8))
    if var top = json as? [String: Any], let objects = top["nftables"] as? [Any] {
        // Stable: a chain's rules keep their order.
        let keyed = objects.enumerated().map { (key: sortKey($0.element), index: $0.offset, object: $0.element) }
        top["nftables"] = keyed.sorted { ($0.key.0, $0.key.1, $0.index) < ($1.key.0, $1.key.1, $1.index) }.map(\.object)
        json = top
    }
    return strip(json) as! NSObject
}

/// Interface patterns side by side (`eth0*`, `eth1*`) and inside one another, of the same zone
/// (`veth-b1` in `veth*`) and of another (`veth-b*` in `veth*`): what the compiler must keep
/// as patterns nft can write.
public let nestedInterfacePolicy = """
    zones:
      lan: {interfaces: ["veth*", "veth-b1", "eth0*", "eth1*", "eth2"]}
      partner: {interfaces: ["veth-b*", "veth0"]}
      db: {members: [203.0.113.5]}
    allow:
      - {from: [lan, partner], to: db, ports: [tcp/5432]}

    """
