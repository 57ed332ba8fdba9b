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

/// `nft -j` output without handles, counter values and version info: what two kernels holding
/// the same rule set must agree on.
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
    return strip(try JSONSerialization.jsonObject(with: Data(text.utf8))) as! NSObject
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
