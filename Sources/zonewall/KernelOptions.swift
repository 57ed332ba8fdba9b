import ArgumentParser
import Netfilter
import Ruleset

/// Options every kernel-touching command shares.
struct KernelOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Talk to nftables inside this network namespace (as `ip netns add NAME` creates it) instead of the current one.",
        discussion: "The demo, the lab and the kernel tests always pass it, so they never touch the machine's own firewall.",
        valueName: "NAME"))
    var netns: String?

    /// Opens the netlink socket in the chosen namespace (`NetlinkKernel(namespace:)`).
    func openKernel() throws(NetfilterError) -> NetlinkKernel {
        try NetlinkKernel(namespace: netns)
    }

    /// Where the commands act, for messages: `table inet zonewall in netns zw-1`.
    func place(_ table: String) -> String {
        netns.map { "\(table) in netns \($0)" } ?? table
    }
}

/// Runs `body`, turning a kernel failure into its description on stderr and exit 2.
func withKernelErrors<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as any KernelFailure {
        printError("zonewall: \(what): \(e)")
        throw ExitCode(2)
    }
}
