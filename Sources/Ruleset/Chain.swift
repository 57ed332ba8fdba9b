/// What makes a chain a base chain: it is attached to a hook.
public struct BaseChain: Hashable, Sendable {
    public var type: ChainType
    public var hook: Hook
    public var priority: Int32
    /// The verdict for packets that fall off the end: `accept` or `drop`.
    public var policy: Verdict

    public init(type: ChainType = .filter, hook: Hook, priority: Int32 = 0, policy: Verdict = .accept) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }
}

/// A chain: a base chain attached to a hook, or a regular chain reached by jump/goto.
public struct Chain: Hashable, Sendable {
    public var name: String
    public var base: BaseChain?
    public var rules: [Rule]

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = []) {
        self.name = name
        self.base = base
        self.rules = rules
    }
}
