/// A snapshot of one table as the kernel holds it, with the generation it was read at.
public struct KernelSnapshot: Sendable {
    /// The table, or nil when it does not exist.
    public var table: Table?
    /// The ruleset generation (`NFT_MSG_GETGEN`) the dump was consistent with.
    public var generation: UInt32

    public init(table: Table?, generation: UInt32) {
        self.table = table
        self.generation = generation
    }
}

/// The one seam between zonewall and a kernel's nftables: netlink for real
/// (`Netfilter.NetlinkKernel`), or `InMemoryKernel` in tests.
public protocol KernelRuleset: Sendable {
    /// Reads `family`/`name` with all its chains, rules, sets and elements.
    func dump(family: Family, table name: String) throws -> KernelSnapshot

    /// Applies the transaction atomically: all of it, or (on error) none of it.
    ///
    /// With `generation`, the kernel refuses the batch (`ERESTART`) if the ruleset moved
    /// since that generation was read.
    func apply(_ transaction: Transaction, expectingGeneration generation: UInt32?) throws

    /// Sends the transaction for validation only: the kernel checks every message, then aborts.
    func check(_ transaction: Transaction) throws
}
