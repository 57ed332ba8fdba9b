import ZonePolicy

/// The policy as a picture: zones, `world` and `host` as nodes, allowed flows as edges labelled
/// with their merged ports.
public struct PolicyGraph: Sendable {
    /// Nodes, sorted: `world` and `host` first when present, then zones by name.
    public var nodes: [Endpoint]
    /// Edges with what they admit, sorted.
    public var edges: [(pair: EndpointPair, access: Access)]
    /// Zones drawn dashed: audit zones (a zone's `audit:` or `settings: audit: true`).
    public var dashed: Set<String>

    /// The whole policy, or only `zone` and its neighbours (so a large policy stays readable).
    public init(_ policy: Policy, reachability: Reachability? = nil, zone: String? = nil,
                isAudit: ((Zone) -> Bool)? = nil) {
        let model = reachability ?? Reachability(policy)
        var edges = model.pairs.map { (pair: $0, access: model.access($0)) }
        var nodes: [Endpoint]
        if let zone {
            let z = Endpoint.zone(zone)
            edges = edges.filter { $0.pair.from == z || $0.pair.to == z }
            var set: Set<Endpoint> = [z]
            for (p, _) in edges { set.insert(p.from); set.insert(p.to) }
            nodes = Array(set)
        } else {
            nodes = [.world, .host] + policy.zones.map { Endpoint.zone($0.name) }
        }
        nodes.sort { Self.rank($0) < Self.rank($1) }
        self.nodes = nodes
        self.edges = edges
        let audited = isAudit ?? { policy.settings.audit || $0.audit }
        self.dashed = Set(policy.zones.filter(audited).map(\.name))
    }

    static func rank(_ e: Endpoint) -> (Int, String) {
        switch e {
        case .world: (0, "")
        case .host: (1, "")
        case .zone(let z): (2, z)
        }
    }

    /// Mermaid flowchart source; GitHub renders it in markdown.
    public var mermaid: String {
        var out = "graph LR\n"
        var index: [Endpoint: Int] = [:]
        for (i, e) in nodes.enumerated() {
            index[e] = i
            out += "  n\(i)\(mermaidNode(e))\n"
        }
        for (p, a) in edges {
            out += "  n\(index[p.from]!) -->|\"\(a.specs.joined(separator: ", "))\"| n\(index[p.to]!)\n"
        }
        let audit = nodes.enumerated().filter { item -> Bool in
            if case .zone(let z) = item.element { return dashed.contains(z) }
            return false
        }
        if !audit.isEmpty {
            out += "  classDef audit stroke-dasharray: 5 5\n"
            out += "  class \(audit.map { "n\($0.offset)" }.joined(separator: ",")) audit\n"
        }
        return out
    }

    /// Graphviz dot source.
    public var dot: String {
        var out = "digraph zonewall {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
        out += "  edge [fontname=\"Helvetica\", fontsize=10];\n"
        for e in nodes {
            var attrs: [String] = []
            switch e {
            case .world: attrs.append("shape=ellipse")
            case .host: attrs.append("shape=house")
            case .zone(let z): if dashed.contains(z) { attrs.append("style=\"rounded,dashed\"") }
            }
            out += "  \"\(e)\"" + (attrs.isEmpty ? "" : " [\(attrs.joined(separator: ", "))]") + ";\n"
        }
        for (p, a) in edges {
            out += "  \"\(p.from)\" -> \"\(p.to)\" [label=\"\(a.specs.joined(separator: ", "))\"];\n"
        }
        return out + "}\n"
    }
}
