// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "zonewall",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "zonewall", targets: ["zonewall"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Pure layers: no C, no kernel. Unit-tested anywhere.
        .target(name: "Ruleset"),
        .target(name: "ZonePolicy", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "ZoneCompiler", dependencies: ["ZonePolicy", "Ruleset"]),
        // Policy review: semantic diff, pictures, HTML report, JSON Schema, least-privilege lint.
        .target(name: "PolicyReview", dependencies: ["ZonePolicy"]),

        // Entering a network namespace (`--netns`) on a throwaway thread: every netlink module's way in.
        .target(name: "CNetworkNamespace"),
        .target(name: "NetworkNamespace", dependencies: ["CNetworkNamespace"]),

        // The only code that touches C and the kernel.
        .systemLibrary(
            name: "CNetfilter",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev", "libmnl-dev"])]
        ),
        .target(name: "Netfilter", dependencies: ["CNetfilter", "Ruleset", "NetworkNamespace"]),

        // Revocation of established flows: the conntrack seam (pure) and ctnetlink behind it.
        .target(name: "Revocation", dependencies: ["ZonePolicy", "Ruleset", "HostIdentity"]),
        .systemLibrary(
            name: "CConntrack",
            pkgConfig: "libnetfilter_conntrack",
            providers: [.apt(["libnetfilter-conntrack-dev"])]
        ),
        .target(name: "Conntrack", dependencies: ["CConntrack", "Revocation", "ZonePolicy", "NetworkNamespace"]),
        // The socket table (sock_diag over libmnl): which unit, cgroup or user owns a flow's local end.
        .systemLibrary(name: "CSockDiag", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),
        .target(name: "SocketDiag", dependencies: ["CSockDiag", "Revocation", "ZonePolicy", "HostIdentity", "NetworkNamespace"]),
        // The flow log: NFLOG over libnetfilter_log, decoding, classification, suggestions.
        .systemLibrary(
            name: "CNetfilterLog",
            pkgConfig: "libnetfilter_log",
            providers: [.apt(["libnetfilter-log-dev"])]
        ),
        .target(name: "FlowLog", dependencies: ["CNetfilterLog", "ZonePolicy", "NetworkNamespace"]),

        // glibc's <malloc.h>: the long-running daemon returns freed heap to the system.
        .systemLibrary(name: "CGlibc"),

        // capset(2) on every thread: the daemon keeps only CAP_NET_ADMIN once started.
        .target(name: "CPrivileges"),
        // Local services on the host: the cgroup2 hierarchy (scan + inotify) and the user database.
        .target(name: "HostIdentity", dependencies: ["ZonePolicy"]),

        // Keeps the kernel equal to the policy; talks to the kernel only through `KernelRuleset`.
        .target(
            name: "Reconciler",
            dependencies: [
                "Ruleset", "ZonePolicy", "ZoneCompiler", "CGlibc", "Revocation", "HostIdentity", "NetworkNamespace",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Zone members from etcd (JSON gRPC gateway over async-http-client), behind `MemberSource`.
        .target(
            name: "Membership",
            dependencies: [
                "ZonePolicy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),

        // `--scope local`: the policy cut to this host's traffic, and the host's addresses over rtnetlink.
        .target(name: "HostScope", dependencies: ["ZonePolicy", "Ruleset", "NetworkNamespace"]),

        // The long-running parts: policy watching, signals, systemd, metrics.
        .target(
            name: "Daemon",
            dependencies: [
                "Reconciler", "Ruleset", "Revocation", "ZonePolicy", "CPrivileges", "FlowLog", "HostIdentity", "ZoneCompiler",
                "Membership", "HostScope",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        .executableTarget(
            name: "zonewall",
            dependencies: [
                "ZonePolicy", "ZoneCompiler", "Ruleset", "Netfilter", "Reconciler", "Daemon", "CGlibc", "PolicyReview",
                "Revocation", "Conntrack", "SocketDiag", "FlowLog", "HostIdentity", "Membership", "HostScope", "NetworkNamespace",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Linked by lld with packed relative relocations (DT_RELR, glibc 2.36): the 120,000
            // relocations of a PIE binary this size take 2.9 MB as RELA, all read at start and
            // resident for the daemon's lifetime; packed they take 23 KB (2.7 MiB less RSS).
            linkerSettings: [.unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]
        ),

        // Helpers shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),

        // Test tooling for the namespace lab (scripts/lab), kept out of the product binary.
        .executableTarget(
            name: "zonewall-lab",
            dependencies: ["ZonePolicy", "ZoneCompiler", "Ruleset", "Netfilter", "Conntrack", "Revocation", "Reconciler", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .testTarget(name: "RulesetTests", dependencies: ["Ruleset", "ZonePolicy", "TestSupport"]),
        .testTarget(name: "ZonePolicyTests", dependencies: ["ZonePolicy", "TestSupport", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "PolicyReviewTests", dependencies: ["PolicyReview", "ZonePolicy", "TestSupport"], exclude: ["Fixtures"], resources: [.copy("Golden")]),
        .testTarget(name: "RevocationTests", dependencies: ["Revocation", "ZonePolicy", "Ruleset", "ZoneCompiler"]),
        .testTarget(name: "HostIdentityTests", dependencies: ["HostIdentity", "ZonePolicy"]),
        .testTarget(name: "DaemonTests", dependencies: [
            "Daemon", "HostIdentity", "Reconciler", "Ruleset", .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(
            name: "ZoneCompilerTests",
            dependencies: ["TestSupport", "ZoneCompiler", "ZonePolicy", "Ruleset"],
            resources: [.copy("Golden")]
        ),
        .testTarget(name: "FlowLogTests", dependencies: ["FlowLog", "ZonePolicy", "TestSupport"]),
        .testTarget(name: "ConntrackTests", dependencies: ["Conntrack", "Revocation", "ZonePolicy"]),
        .testTarget(name: "SocketDiagTests", dependencies: ["SocketDiag", "Revocation", "ZonePolicy", "HostIdentity"]),
        .testTarget(name: "ReconcilerTests", dependencies: ["Reconciler", "Ruleset", "ZonePolicy", "ZoneCompiler", "Revocation"]),
        .testTarget(name: "NetfilterTests", dependencies: ["TestSupport", "Netfilter", "Ruleset", "ZoneCompiler", "ZonePolicy"]),
        .testTarget(name: "MembershipTests", dependencies: [
            "Membership", "Daemon", "Reconciler", "Ruleset", "ZonePolicy", "HostScope",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "NetworkNamespaceTests", dependencies: ["NetworkNamespace"]),
        .testTarget(name: "HostScopeTests", dependencies: ["TestSupport", "HostScope", "ZoneCompiler", "ZonePolicy", "Ruleset"]),
        // Membership against a real etcd server started by the tests (Debian's etcd-server).
        .testTarget(name: "EtcdTests", dependencies: ["Membership", "ZonePolicy"]),
        // zonewall itself against real kernels, in network namespaces (root; skipped loudly otherwise).
        .testTarget(name: "KernelTests", dependencies: ["TestSupport", "Netfilter", "Ruleset", "ZoneCompiler", "ZonePolicy", "Daemon", "NetworkNamespace"]),
    ]
)

// libFuzzer targets, built only by scripts/fuzz (ZONEWALL_FUZZ=1, with -sanitize=fuzzer,address):
// libFuzzer provides their `main`, so an ordinary build could not link them.
if Context.environment["ZONEWALL_FUZZ"] == "1" {
    package.targets.append(.target(name: "CFuzzDriver", path: "Tests/Fuzz/CFuzzDriver"))
    for (name, dependency) in [("FuzzPolicyLoader", "ZonePolicy"), ("FuzzSpecs", "ZonePolicy"),
                               ("FuzzTableDump", "Netfilter"), ("FuzzNotifications", "Netfilter"),
                               ("FuzzNFLog", "FlowLog"), ("FuzzConntrack", "Conntrack"),
                               ("FuzzSockDiag", "SocketDiag")] {
        package.targets.append(.executableTarget(name: name, dependencies: ["CFuzzDriver", .target(name: dependency)],
                                                 path: "Tests/Fuzz/\(name)"))
    }
}
