import TestSupport
import Foundation
import Glibc
import Netfilter
import Ruleset
import Testing
import ZoneCompiler
import ZonePolicy

/// `zonewall apply/status/remove/check --kernel` against real nftables, each test in network
/// namespaces of its own (`zw-kt-<random>`, deleted afterwards). Skipped loudly unless root.
@Suite("zonewall kernel commands in network namespaces")
struct CommandTests {
    static let policies = "\(repoRoot)/Policies"

    func compiled(_ dir: String) throws -> Table {
        let result = PolicyLoader.load(directory: dir)
        let policy = try #require(result.policy, "\(result.diagnostics)")
        return ZoneCompiler.compile(policy)
    }

    /// After `zonewall apply` the kernel holds exactly the compiled model; a second apply is a no-op.
    @Test(needsRoot) func roundTripAndStatus() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let missing = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(missing.status == 4, "\(missing)")
            #expect(missing.stdout.contains("does not exist"))
            // A table to create, not one to replace: no deletion of a table that is not there.
            #expect(missing.stdout.contains("apply would create the table:\n  add table inet zonewall\n  add set"), "\(missing.stdout)")
            #expect(!missing.stdout.contains("delete table"), "\(missing.stdout)")

            let apply = try zonewall(["apply", "--policies", Self.policies, "--netns", ns])
            #expect(apply.status == 0, "\(apply)")
            #expect(apply.stdout.contains("created") && apply.stdout.contains("verified"), "\(apply.stdout)")
            let dumped = try NetlinkKernel(namespace: ns).dump(family: .inet, table: "zonewall").table
            #expect(canonical(dumped) == canonical(try compiled(Self.policies)))

            let again = try zonewall(["apply", "--policies", Self.policies, "--netns", ns])
            #expect(again.status == 0 && again.stdout.contains("already in sync, 0 changes"), "\(again)")
            let status = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(status.status == 0 && status.stdout.hasPrefix("in sync"), "\(status)")

            // Drift in elements: status names it, apply repairs it with element changes only.
            try nft(ns, ["delete", "element", "inet", "zonewall", "zoned_v4", "{ 198.51.100.200 }"])
            let drift = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(drift.status == 4, "\(drift)")
            #expect(drift.stdout.contains("set zoned_v4: 1 element(s) missing, 0 extra"), "\(drift.stdout)")
            #expect(drift.stdout.contains("add element inet zonewall zoned_v4 { 198.51.100.200 }"), "\(drift.stdout)")
            let repair = try zonewall(["apply", "--policies", Self.policies, "--netns", ns])
            #expect(repair.status == 0 && repair.stdout.contains("updated") && repair.stdout.contains("1 element(s)"), "\(repair)")

            // A foreign rule changes the skeleton: status says which chain, apply replaces the table.
            try nft(ns, ["add", "rule", "inet", "zonewall", "input", "meta", "mark", "0x1", "accept"])
            let foreign = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(foreign.status == 4 && foreign.stdout.contains("chain input: rules differ"), "\(foreign)")
            let replace = try zonewall(["apply", "--policies", Self.policies, "--netns", ns])
            #expect(replace.status == 0 && replace.stdout.contains("replaced"), "\(replace)")
            #expect(try zonewall(["status", "--policies", Self.policies, "--netns", ns]).status == 0)
        }
    }

    /// One change `nft` makes to an attribute that a listing of rules and elements alone would
    /// not catch, and what `status` must say about it.
    struct AttributeTamper: Sendable, CustomStringConvertible {
        var description: String
        /// nft arguments, or a transformation of the table's listing fed back to `nft -f`.
        var command: [String]?
        var edit: (@Sendable (String) -> String)?
        var expected: String
        /// What `apply` says it did: a dormant table is woken in place, the rest is replaced.
        var repair = "replaced"
    }

    static let attributeTampers: [AttributeTamper] = [
        AttributeTamper(description: "dormant table", command: ["add", "table", "inet", "zonewall", "{ flags dormant; }"],
                        expected: "table flags are dormant, the policy wants none (dormant: it filters nothing)",
                        repair: ": 1 changes, 0 element(s)"),
        AttributeTamper(description: "chain policy", command: ["add", "chain", "inet", "zonewall", "forward", "{ policy drop; }"],
                        expected: "chain forward has a different policy (drop in the kernel, accept compiled)"),
        AttributeTamper(description: "chain priority",
                        edit: { $0.replacingOccurrences(of: "hook input priority filter;", with: "hook input priority filter + 5;") },
                        expected: "chain input has a different priority (5 in the kernel, 0 compiled)"),
        AttributeTamper(description: "set flags and timeout",
                        edit: { text in
                            guard let r = text.range(of: "set zoned_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n") else { return text }
                            return text.replacingCharacters(in: r, with: "set zoned_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\ttimeout 1h\n")
                        },
                        expected: "set zoned_v4 is declared differently: flags (0x14 in the kernel, 0x4 compiled), timeout (3600000 ms in the kernel)"),
        // Objects that filter nothing until a rule uses them, but are not the declared table. (This
        // kernel has no flowtables, which are read back the same way.)
        AttributeTamper(description: "stateful object", command: ["add", "counter", "inet", "zonewall", "tampered"],
                        expected: "counter tampered is not in the policy (zonewall declares no stateful objects)"),
        AttributeTamper(description: "quota", command: ["add", "quota", "inet", "zonewall", "q", "{ over 1 mbytes }"],
                        expected: "quota q is not in the policy (zonewall declares no stateful objects)"),
    ]

    /// Each attribute changed by `nft` is drift: `status` names it and exits 4, `apply` repairs it.
    @Test(needsRoot, arguments: attributeTampers)
    func attributeDriftIsSeenAndRepaired(_ tamper: AttributeTamper) throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let apply = try zonewall(["apply", "--policies", Self.policies, "--netns", ns])
            #expect(apply.status == 0, "\(apply)")
            let before = try #require(try listing(ns))
            if let command = tamper.command {
                try nft(ns, command)
            } else if let edit = tamper.edit {
                let edited = edit(before)
                try #require(edited != before, "the edit must change the table")
                try nft(ns, ["-f", "-"], input: "delete table inet zonewall\n" + edited)
            }
            let after = try #require(try listing(ns))
            try #require(after != before, "the tampering must show in the listing")
            let status = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(status.status == 4, "\(status)")
            #expect(status.stdout.contains(tamper.expected), "\(status.stdout)")
            let repair = try zonewall(["apply", "--policies", Self.policies, "--netns", ns])
            #expect(repair.status == 0 && repair.stdout.contains(tamper.repair), "\(repair)")
            #expect(try listing(ns) == before)
            let clean = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(clean.status == 0, "\(clean)")
        }
    }

    /// A rule's user data changed by `nft replace rule … comment`: status exits 4 naming the rule.
    @Test(needsRoot) func ruleUserDataIsDrift() throws {
        try withNamespace { ns in
            #expect(try zonewall(["apply", "--policies", Self.policies, "--netns", ns]).status == 0)
            let chain = try nft(ns, ["-a", "list", "chain", "inet", "zonewall", "forward"])
            let line = try #require(chain.split(separator: "\n").first { $0.contains("vmap @") })
            let handle = try #require(line.split(separator: " ").last.map(String.init))
            let rule = line.trimmingCharacters(in: .whitespaces).components(separatedBy: " # handle").first!
            try nft(ns, ["replace", "rule", "inet", "zonewall", "forward", "handle", handle, rule, "comment", "\"tampered\""])
            let status = try zonewall(["status", "--policies", Self.policies, "--netns", ns])
            #expect(status.status == 4 && status.stdout.contains("chain forward: rule"), "\(status)")
            #expect(try zonewall(["apply", "--policies", Self.policies, "--netns", ns]).status == 0)
            #expect(try zonewall(["status", "--policies", Self.policies, "--netns", ns]).status == 0)
        }
    }

    /// `nft -j list` after `zonewall apply` in one namespace equals it after `nft -f <(zonewall plan)`
    /// in another, for the example policy, generated ones and (seed 0) one with a ports chain too
    /// long to hold inline, (seed 7) one with interface patterns side by side and inside one another.
    @Test(needsRoot, arguments: [nil] + (0...7).map { UInt64($0) })
    func sameAsNftF(seed: UInt64?) throws {
        if skipUnlessRoot() { return }
        let files = try seed.map { $0 == 0 ? longAdmissionPolicy() : $0 == 7 ? Self.nestedInterfaces : generatedPolicy(seed: $0) }
            ?? examplePolicyFiles()
        try withPolicy(files) { dir in
            let check = try zonewall(["check", "--policies", dir])
            try #require(check.status == 0, "seed \(String(describing: seed)): \(check)\n\(files)")
            let plan = try zonewall(["plan", "--policies", dir])
            try #require(plan.status == 0)
            if seed == 0 { #expect(plan.stdout.contains("meta l4proto . th sport . th dport @ports_tcp.1000_"), "\(plan.stdout)") }
            try withNamespace { ours in
                try withNamespace { theirs in
                    let apply = try zonewall(["apply", "--policies", dir, "--netns", ours])
                    #expect(apply.status == 0, "\(apply)")
                    // nft's own check first: it must accept the plan and leave the namespace empty.
                    _ = try nft(theirs, ["-c", "-f", "-"], input: plan.stdout)
                    #expect(try listing(theirs) == nil, "nft -c changed the namespace")
                    try nft(theirs, ["-f", "-"], input: plan.stdout)
                    let list = ["-j", "list", "table", "inet", "zonewall"]
                    #expect(try normalizedJSON(nft(ours, list)) == normalizedJSON(nft(theirs, list)),
                            "seed \(String(describing: seed))")
                    // And both read back as the compiled model.
                    let model = canonical(try compiled(dir))
                    #expect(canonical(try NetlinkKernel(namespace: ours).dump(family: .inet, table: "zonewall").table) == model)
                    #expect(canonical(try NetlinkKernel(namespace: theirs).dump(family: .inet, table: "zonewall").table) == model)
                }
            }
        }
    }

    static let nestedInterfaces = ["p.yaml": nestedInterfacePolicy]

    /// An invalid policy exits 1 and leaves the kernel byte-for-byte as it was, table or no table.
    @Test(needsRoot) func invalidPolicyLeavesKernelUntouched() throws {
        if skipUnlessRoot() { return }
        var files = try examplePolicyFiles()
        files["rules.yaml"] = files["rules.yaml"]!.replacingOccurrences(of: "to: db\n", with: "to: dbb\n")
        try withPolicy(files) { bad in
            try withNamespace { ns in
                let first = try zonewall(["apply", "--policies", bad, "--netns", ns])
                #expect(first.status == 1, "\(first)")
                #expect(first.stderr.contains("dbb"), "\(first.stderr)")
                #expect(try listing(ns) == nil)

                try #require(try zonewall(["apply", "--policies", Self.policies, "--netns", ns]).status == 0)
                let before = try #require(try listing(ns))
                let gen = try NetlinkKernel(namespace: ns).generation()
                let again = try zonewall(["apply", "--policies", bad, "--netns", ns])
                #expect(again.status == 1 && again.stderr.contains("nothing was changed"), "\(again)")
                #expect(try listing(ns) == before)
                #expect(try NetlinkKernel(namespace: ns).generation() == gen)
                #expect(try zonewall(["check", "--kernel", "--policies", bad, "--netns", ns]).status == 1)
            }
        }
    }

    /// A batch the kernel refuses changes nothing: through the CLI (a fault injected in debug
    /// builds) with exit 2 and the kernel's reason, and through the library.
    @Test(needsRoot) func rejectedBatchLeavesTableByteForByte() throws {
        if skipUnlessRoot() { return }
        var files = try examplePolicyFiles()
        files["zones.yaml"] = files["zones.yaml"]!.replacingOccurrences(of: "198.51.100.11,", with: "198.51.100.11, 198.51.100.12,")
        try withPolicy(files) { changed in
            try withNamespace { ns in
                try #require(try zonewall(["apply", "--policies", Self.policies, "--netns", ns]).status == 0)
                let before = try #require(try listing(ns))

                // Element-only change and full replacement both refused as a whole.
                for policy in [changed, Self.policies] {
                    if policy == Self.policies { try nft(ns, ["add", "chain", "inet", "zonewall", "extra"]) }
                    let snapshot = try listing(ns)
                    let o = try zonewall(["apply", "--policies", policy, "--netns", ns], environment: ["ZONEWALL_FAULT": "reject"])
                    #expect(o.status == 2, "\(o)")
                    #expect(o.stderr.contains("adding rule") && o.stderr.contains("ENOENT"), "\(o.stderr)")
                    #expect(try listing(ns) == snapshot)
                }
                try nft(ns, ["delete", "chain", "inet", "zonewall", "extra"])
                #expect(try listing(ns) == before)

                // Through the library: a valid element change followed by a rule the kernel refuses.
                let kernel = try NetlinkKernel(namespace: ns)
                let tx = Transaction(family: .inet, table: "zonewall", changes: [
                    .addElements(set: "zoned_v4", [SetElement(key: [ValueRange(Value(0xC000_02C8, width: 4))])]),
                    .addRule(chain: "forward", Rule([.verdict(.jump("nowhere"))])),
                ])
                let e = try #require(throws: NetfilterError.self) { try kernel.apply(tx, expectingGeneration: nil) }
                #expect(e.errno == ENOENT)
                #expect(try listing(ns) == before)
                #expect(try zonewall(["status", "--policies", Self.policies, "--netns", ns]).status == 0)
            }
        }
    }

    /// Where no table exists, apply builds it in several transactions, hooks last: the kernel
    /// ends up exactly as with one transaction, and a refused last stage leaves no table.
    @Test(needsRoot) func stagedCreationEqualsOneTransaction() throws {
        if skipUnlessRoot() { return }
        try withNamespace { one in
            try withNamespace { staged in
                let whole = try zonewall(["apply", "--policies", Self.policies, "--netns", one])
                #expect(whole.status == 0 && whole.stdout.contains("in 1 transaction(s)"), "\(whole)")

                let parts = try zonewall(["apply", "--stage-elements", "7", "--policies", Self.policies, "--netns", staged])
                #expect(parts.status == 0, "\(parts)")
                let count = parts.stdout.firstMatch(of: /in (\d+) transaction/).map { Int($0.1)! } ?? 0
                #expect(count > 5, "\(parts.stdout)")
                #expect(try NetlinkKernel(namespace: staged).generation() == UInt32(count) + 1)
                #expect(try listing(staged) == listing(one))
                #expect(try nft(staged, ["-j", "list", "table", "inet", "zonewall"]).replacing(/"handle": \d+/, with: "")
                        == nft(one, ["-j", "list", "table", "inet", "zonewall"]).replacing(/"handle": \d+/, with: ""))
                let status = try zonewall(["status", "--policies", Self.policies, "--netns", staged])
                #expect(status.status == 0 && status.stdout.hasPrefix("in sync"), "\(status)")
            }
            // Verified by skeleton and generation only: the same table, and it says what it checked.
            try withNamespace { skeleton in
                let o = try zonewall(["apply", "--verify", "skeleton", "--stage-elements", "7", "--policies", Self.policies,
                                      "--netns", skeleton])
                #expect(o.status == 0 && o.stdout.contains("not read back (--verify skeleton)"), "\(o)")
                #expect(try listing(skeleton) == listing(one))
                #expect(try zonewall(["status", "--policies", Self.policies, "--netns", skeleton]).status == 0)
                let bad = try zonewall(["apply", "--verify", "none", "--policies", Self.policies, "--netns", skeleton])
                #expect(bad.status != 0 && bad.stderr.contains("--verify"), "\(bad)")
            }
        }
        try withNamespace { ns in
            // The last stage is refused: the stages before it are removed again.
            let o = try zonewall(["apply", "--stage-elements", "7", "--policies", Self.policies, "--netns", ns],
                                 environment: ["ZONEWALL_FAULT": "reject"])
            #expect(o.status == 2, "\(o)")
            #expect(o.stderr.contains("adding rule") && o.stderr.contains("ENOENT"), "\(o.stderr)")
            #expect(try listing(ns) == nil)
            #expect(try nft(ns, ["list", "ruleset"]).isEmpty)
            #expect(try NetlinkKernel(namespace: ns).generation() > 2, "stages were committed, then removed")

            let bad = try zonewall(["apply", "--stage-elements", "0", "--policies", Self.policies, "--netns", ns])
            #expect(bad.status != 0 && bad.stderr.contains("--stage-elements"), "\(bad)")
        }
    }

    /// Interface zones are interval maps of interface names with wildcards, where `nft add
    /// element` of a single pattern often fails ("interval overlaps"). zonewall's own edits of
    /// them are element changes that leave the kernel exactly as a fresh apply would.
    @Test(needsRoot) func interfaceWildcardEditsAreElementChanges() throws {
        if skipUnlessRoot() { return }
        func policy(partner: String, dmz: String) -> [String: String] {
            ["p.yaml": """
                zones:
                  partner: {interfaces: [\(partner)]}
                  dmz: {interfaces: [\(dmz)]}
                  web: {members: [198.51.100.0/24]}
                allow:
                  - {from: partner, to: web, ports: [tcp/80]}
                  - {from: dmz, to: web, ports: [tcp/443]}
                """]
        }
        let first = policy(partner: "\"veth-p*\"", dmz: "\"veth-pd*\", wg0")
        let edits = [policy(partner: "\"veth-p*\", \"veth-pe*\"", dmz: "\"veth-pd*\", wg1"),  // nested, added, renamed
                     policy(partner: "\"veth-*\"", dmz: "\"veth-pd*\", \"veth-pdx*\", wg1"),  // widened, nested twice
                     first]
        try withNamespace { ns in
            try withPolicy(first) { dir throws in
                #expect(try zonewall(["apply", "--policies", dir, "--netns", ns]).status == 0)
            }
            for edit in edits {
                try withPolicy(edit) { dir in
                    let o = try zonewall(["apply", "--policies", dir, "--netns", ns])
                    #expect(o.status == 0 && o.stdout.contains("element(s) added or deleted") && !o.stdout.contains("replaced"), "\(o)")
                    #expect(try zonewall(["status", "--policies", dir, "--netns", ns]).status == 0)
                    try withNamespace { fresh throws in
                        #expect(try zonewall(["apply", "--policies", dir, "--netns", fresh]).status == 0)
                        #expect(try listing(ns) == listing(fresh))
                    }
                }
            }
            let final = try listing(ns) ?? ""
            #expect(final.contains("elements = { \"veth-p*\" }") && final.contains("jump fi_dmz"), "\(final)")
        }
    }

    /// `remove` deletes table inet zonewall and nothing else; an absent table is fine.
    @Test(needsRoot) func removeOnlyOurTable() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            try nft(ns, ["add", "table", "inet", "other"])
            try nft(ns, ["add", "chain", "inet", "other", "c"])
            let absent = try zonewall(["remove", "--netns", ns])
            #expect(absent.status == 0 && absent.stdout.contains("does not exist"), "\(absent)")
            try #require(try zonewall(["apply", "--policies", Self.policies, "--netns", ns]).status == 0)
            let removed = try zonewall(["remove", "--netns", ns])
            #expect(removed.status == 0 && removed.stdout.contains("removed"), "\(removed)")
            #expect(try listing(ns) == nil)
            #expect(try nft(ns, ["list", "tables"]) == "table inet other\n")
            #expect(try zonewall(["status", "--policies", Self.policies, "--netns", ns]).status == 4)
        }
    }

    /// Kernel errors exit 2 with a message naming what failed.
    @Test(needsRoot) func kernelErrorsExit2() throws {
        if skipUnlessRoot() { return }
        let o = try zonewall(["apply", "--policies", Self.policies, "--netns", "zw-kt-does-not-exist"])
        #expect(o.status == 2, "\(o)")
        #expect(o.stderr.contains("opening network namespace /run/netns/zw-kt-does-not-exist (no such namespace: `ip netns list` shows the names there are): ENOENT"),
                "\(o.stderr)")
        #expect(try zonewall(["status", "--policies", Self.policies, "--netns", "zw-kt-does-not-exist"]).status == 2)
        #expect(try zonewall(["remove", "--netns", "zw-kt-does-not-exist"]).status == 2)
        #expect(try zonewall(["check", "--netns", "x", "--policies", Self.policies]).status == 1)  // --netns needs --kernel
    }

    /// `check --kernel` validates in the kernel and changes nothing; it needs no host root:
    /// an unprivileged user in `unshare -rn` (its own user and network namespace) can run it.
    @Test(needsRoot) func checkKernelValidatesWithoutChanging() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let o = try zonewall(["check", "--kernel", "--policies", Self.policies, "--netns", ns])
            #expect(o.status == 0 && o.stdout.contains("accepts the rule set"), "\(o)")
            #expect(try listing(ns) == nil)
            #expect(try nft(ns, ["list", "ruleset"]) == "")
        }
        let unprivileged = try exec(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                                     "unshare", "-rn", zonewallBinary, "check", "--kernel", "--policies", Self.policies])
        if unprivileged.stderr.contains("unshare failed") {
            print("** NOTE: unprivileged user namespaces are disabled here; `unshare -rn` check not run: \(unprivileged.stderr)")
            return
        }
        #expect(unprivileged.status == 0, "\(unprivileged)")
        #expect(unprivileged.stdout.contains("accepts the rule set"), "\(unprivileged)")
    }

    /// Root without CAP_NET_ADMIN (a container without NET_ADMIN, a unit whose bounding set
    /// leaves it out) is told the capability is missing, not that another process owns the
    /// table; reading needs it as much as writing. The daemon says the same.
    @Test(needsRoot) func rootWithoutNetAdminIsToldSo() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            for args in [["status", "--policies", Self.policies, "--netns", ns], ["apply", "--policies", Self.policies, "--netns", ns],
                         ["run", "--policies", Self.policies, "--netns", ns, "--state-file", "/tmp/\(ns)-state.json",
                          "--flow-log-socket", ""]] {
                let o = try exec(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", zonewallBinary] + args)
                #expect(o.status == 2, "\(args[0]): \(o)")
                #expect(o.stderr.contains("does not hold CAP_NET_ADMIN"), "\(args[0]): \(o)")
                #expect(!o.stderr.contains("another process owns"), "\(args[0]): \(o)")
            }
            #expect(try listing(ns) == nil)
            unlink("/tmp/\(ns)-state.json")
        }
    }
}
