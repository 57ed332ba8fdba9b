/// What makes a chain a base chain: it is attached to a hook.
public struct BaseChain: Hashable, Sendable {
    public var type: ChainType
    public var hook: Hook
    public var priority: Int32
    /// The verdict for packets that fall off the end: `accept` or `drop`.
    public var policy: Verdict
    /// The interface a `netdev` (or `inet` ingress) chain is attached to; nil for none.
    public var device: String?

    public init(type: ChainType = .filter, hook: Hook, priority: Int32 = 0, policy: Verdict = .accept, device: String? = nil) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
        self.device = device
    }
}

/// A chain: a base chain attached to a hook, or a regular chain reached by jump/goto.
public struct Chain: Hashable, Sendable {
    public var name: String
    public var base: BaseChain?
    public var rules: [Rule]
    /// `NFTA_CHAIN_FLAGS` without `NFT_CHAIN_BASE` (which `base` says): e.g. hardware offload.
    public var flags: UInt32
    /// `NFTA_CHAIN_USERDATA` (nft keeps a chain's comment there); nil when absent.
    public var userData: [UInt8]?

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = [], flags: UInt32 = 0, userData: [UInt8]? = nil) {
        self.name = name
        self.base = base
        self.rules = rules
        self.flags = flags
        self.userData = userData
    }
}
