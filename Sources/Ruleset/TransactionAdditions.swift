extension Transaction {
    /// The transaction that grows `actual` into `desired` without removing anything, or nil when
    /// that is not possible.
    ///
    /// Possible when every set and chain of `actual` is still in `desired` with the same
    /// declaration, base chains keep their rules, and each regular chain's rules in `actual` are
    /// the first rules of its rules in `desired`. Then the transaction adds the new sets and
    /// their elements, the new chains, the rules appended to chains, and the element changes of
    /// the other sets. A zone that gains its first destination of a family (a new set and one
    /// rule in its chain), or a first rule (a new chain and a new source-map element), is then an
    /// edit of that zone's objects, not a replacement of the table.
    public static func additions(from actual: Table, to desired: Table) -> Transaction? {
        // A table switched dormant (or awake) is set back by one `add table` with the desired
        // flags, which the kernel applies to the existing table; other table attributes (owner,
        // persist, user data) cannot be changed in place, so a replacement sets them.
        let flagChange = actual.flags.symmetricDifference(desired.flags)
        guard actual.family == desired.family, actual.name == desired.name,
              flagChange.isSubset(of: .dormant), actual.userData == desired.userData,
              // Objects nobody declared (a counter, a flowtable): only a replacement removes them.
              actual.objects == desired.objects else { return nil }
        let oldSets = Dictionary(actual.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldChains = Dictionary(actual.chains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        guard oldSets.count == actual.sets.count, oldChains.count == actual.chains.count else { return nil }
        let wantedSets = Set(desired.sets.map(\.name)), wantedChains = Set(desired.chains.map(\.name))
        guard oldSets.keys.allSatisfy(wantedSets.contains), oldChains.keys.allSatisfy(wantedChains.contains) else { return nil }

        var tx = Transaction(family: desired.family, table: desired.name)
        var newSets: [Change] = [], newElements: [Change] = [], newChains: [Change] = [], newRules: [Change] = []
        var before: [NamedSet] = [], after: [NamedSet] = []
        for s in desired.sets {
            if let was = oldSets[s.name] {
                guard was.declaration == s.declaration else { return nil }
                if was.elements != s.elements { before.append(was); after.append(s) }
            } else {
                newSets.append(.addSet(s.declaration))
                if !s.elements.isEmpty { newElements.append(.addElements(set: s.name, s.elements)) }
            }
        }
        for c in desired.chains {
            if let was = oldChains[c.name] {
                var wasDeclaration = was, declaration = c
                wasDeclaration.rules = []
                declaration.rules = []
                guard wasDeclaration == declaration, was.rules.count <= c.rules.count,
                      c.base == nil || was.rules == c.rules,
                      c.rules.prefix(was.rules.count).elementsEqual(was.rules) else { return nil }
                newRules += c.rules.dropFirst(was.rules.count).map { .addRule(chain: c.name, $0) }
            } else {
                guard c.base == nil else { return nil }  // a new hook is a new shape
                var decl = c
                decl.rules = []
                newChains.append(.addChain(decl))
                newRules += c.rules.map { .addRule(chain: c.name, $0) }
            }
        }
        // Sets and chains exist before the rules and map elements that name them (a new map's
        // elements may jump to a new chain).
        let elements = elementChanges(from: before, to: after, family: desired.family, table: desired.name)
        let wake: [Change] = flagChange.isEmpty ? [] : [.addTable]
        tx.changes = wake + newSets + newChains + newElements + newRules + elements.changes
        tx.setDeclarations = elements.setDeclarations
        tx.tableFlags = desired.flags
        return tx
    }
}
