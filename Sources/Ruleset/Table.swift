/// A table with its chains and sets.
public struct Table: Hashable, Sendable {
    public var family: Family
    public var name: String
    /// Chains in declaration order; base chains and regular chains alike.
    public var chains: [Chain]
    /// Sets and maps in declaration order.
    public var sets: [NamedSet]

    public init(family: Family, name: String, chains: [Chain] = [], sets: [NamedSet] = []) {
        self.family = family
        self.name = name
        self.chains = chains
        self.sets = sets
    }

    /// The table with every set emptied: the part that changes only when the policy's shape does.
    public var skeleton: Table {
        var t = self
        t.sets = sets.map(\.declaration)
        return t
    }

    public func set(named name: String) -> NamedSet? { sets.first { $0.name == name } }
    public func chain(named name: String) -> Chain? { chains.first { $0.name == name } }

    /// Number of elements over all sets and maps.
    public var elementCount: Int { sets.reduce(0) { $0 + $1.elements.count } }
}
