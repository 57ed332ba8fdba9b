import ArgumentParser
import Foundation
import HostScope
import Ruleset
import ZoneCompiler
import ZonePolicy

extension HostScope: ExpressibleByArgument {}

/// `--scope all|local`, shared by `plan`, `apply` and `run`.
struct ScopeOptions: ParsableArguments {
    @Option(name: .customLong("scope"), help: ArgumentHelp("all: the whole policy on input, forward and output (a router). local: only rules with a zone that holds one of this host's addresses, or host, on input and output; no forward governance (env ZONEWALL_SCOPE; default all).", valueName: "all|local"))
    var scopeOption: HostScope?

    /// `--scope`, else `ZONEWALL_SCOPE` (checked by `validate()`), else all.
    var scope: HostScope { scopeOption ?? Self.environmentScope.flatMap(HostScope.init(rawValue:)) ?? .all }

    private static var environmentScope: String? {
        guard let v = ProcessInfo.processInfo.environment["ZONEWALL_SCOPE"], !v.isEmpty else { return nil }
        return v
    }

    @Option(name: .customLong("host-address"), help: ArgumentHelp("With --scope local: take this host's addresses from here instead of its interfaces; repeat for more.", valueName: "ADDRESS"))
    var hostAddresses: [String] = []

    func validate() throws {
        // The same words as the parser's for `--scope locl`: a typo in /etc/default/zonewall
        // must not silently program the whole policy.
        if scopeOption == nil, let v = Self.environmentScope, HostScope(rawValue: v) == nil {
            throw ValidationError("The value '\(v)' of ZONEWALL_SCOPE is invalid for '--scope <all|local>'. Please provide one of 'all' and 'local'.")
        }
        for a in hostAddresses {
            // One address: a prefix would be taken as its first address (203.0.113.0/24 as 203.0.113.0).
            guard let p = IPPrefix.parse(a), p.length == p.family.bits else {
                throw ValidationError("--host-address '\(a)' is not a single IPv4/IPv6 address")
            }
        }
        if !hostAddresses.isEmpty && scope != .local { throw ValidationError("--host-address needs --scope local") }
    }

    /// The host's addresses: given ones, or read over rtnetlink (in `netns` when named).
    func addresses(netns: String?) throws -> [IPPrefix] {
        if !hostAddresses.isEmpty { return hostAddresses.compactMap(IPPrefix.parse) }
        return try RtnetlinkAddresses(namespace: netns).current()
    }

    /// The table for this scope: the whole policy, or the host's part of it.
    func compile(_ policy: Policy, netns: String?, host facts: HostFacts = HostFacts()) throws -> Table {
        guard scope == .local else { return ZoneCompiler.compile(policy, host: facts) }
        let host = try addresses(netns: netns)
        return ScopeFilter.withoutForward(ZoneCompiler.compile(ScopeFilter.restrict(policy, toHostWith: host), host: facts))
    }
}

/// Runs `body`; a failure to read host facts is a system error: message, exit 2.
func withExit2<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch {
        printError("zonewall: reading this host's addresses: \(error)")
        throw ExitCode(2)
    }
}
