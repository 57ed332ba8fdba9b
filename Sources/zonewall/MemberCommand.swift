import ArgumentParser
import Foundation
import Logging
import Membership
import ServiceLifecycle
import ZonePolicy

/// `zonewall member`: register instances in etcd, and list them.
struct MemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "Zone members in etcd: register an instance under a lease, or list them.",
        subcommands: [MemberAddCommand.self, MemberListCommand.self]
    )
}

/// `zonewall member add`: one instance, registered under a lease kept alive until SIGTERM/SIGINT.
struct MemberAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Register an instance in a zone and keep it registered until stopped.",
        discussion: """
            Writes <prefix><zone>/<id> = {"addresses": [...]} under a lease of --ttl and keeps the \
            lease alive. SIGTERM or SIGINT revokes the lease: the member is withdrawn at once. If \
            the process dies, the member expires with the TTL. Run it as a sidecar, an \
            ExecStartPost, or a companion systemd unit (see the README).
            """
    )

    @OptionGroup var etcd: EtcdOptions

    @Option(help: "The zone to join (declared in the policy files).")
    var zone: String

    @Option(name: .customLong("address"), help: ArgumentHelp("An address or prefix of the instance; repeat for more.", valueName: "ADDRESS"))
    var addresses: [String] = []

    @Option(help: "Instance id (default: the host name).")
    var id: String?

    @Option(help: ArgumentHelp("Lease TTL: 10s, 1m, or seconds.", valueName: "DURATION"))
    var ttl: String = "10s"

    func validate() throws {
        guard MemberValue.key("p/\(zone)/x", prefix: "p/").isSuccess else { throw ValidationError("--zone '\(zone)' is not a zone name ([a-z][a-z0-9_-]{0,31})") }
        guard !addresses.isEmpty else { throw ValidationError("give at least one --address") }
        for a in addresses {
            guard let p = IPPrefix.parse(a) else { throw ValidationError("--address '\(a)' is not an IPv4/IPv6 address or prefix") }
            guard !p.hasHostBits else { throw ValidationError("--address '\(a)' has host bits set (did you mean \(p.normalized)?)") }
            if let widest = MemberValue.widestPrefix[p.family], p.length < widest {
                throw ValidationError("--address '\(a)' is too wide for a member (at most /\(MemberValue.widestPrefix[.ipv4]!) for IPv4, "
                                      + "/\(MemberValue.widestPrefix[.ipv6]!) for IPv6): the daemon refuses it; declare wide ranges in the policy files")
            }
        }
        if let id, id.isEmpty || id.contains("/") { throw ValidationError("--id must be non-empty and contain no '/'") }
        guard Registration.parseTTL(ttl) != nil else {
            throw ValidationError("--ttl '\(ttl)' must be 1s to \(Registration.maximumTTL)s, etcd's longest lease (e.g. 10s, 1m, 2h)")
        }
        _ = try etcd.requiredConfiguration()
    }

    func run() async throws {
        let client = try EtcdClient(try etcd.requiredConfiguration())
        let instance = id ?? ProcessInfo.processInfo.hostName
        let member = Member(key: MemberKey(zone: zone, instance: instance), addresses: addresses.compactMap(IPPrefix.parse))
        let registration = Registration(client: client, member: member, ttl: Registration.parseTTL(ttl)!) { line in
            // A registration outlives its reader: a closed or full output loses the line, not the lease.
            try? StandardOutput.write(line + "\n")
        }
        let service = RegistrationService(registration: registration)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "zonewall-member")
        ))
        do {
            try await group.run()
        } catch let error as EtcdError {
            // etcd refused the registration itself: asking again would not help.
            await client.shutdown()
            printError("zonewall: member add: \(error)")
            throw ExitCode(1)
        }
        await client.shutdown()
    }
}

/// Runs a registration until graceful shutdown, then lets it revoke its lease.
struct RegistrationService: Service {
    let registration: Registration
    func run() async throws {
        try await cancelWhenGracefulShutdown { try await registration.run() }
    }
}

/// `zonewall member list`: what etcd holds, one instance per line.
struct MemberListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the members registered in etcd (zone, instance, addresses); ignored keys are marked."
    )

    @OptionGroup var etcd: EtcdOptions

    @Option(help: "Only this zone.")
    var zone: String?

    func validate() throws { _ = try etcd.requiredConfiguration() }

    func run() async throws {
        let config = try etcd.requiredConfiguration()
        let client = try EtcdClient(config)
        let result: (kvs: [EtcdKeyValue], revision: Int64)
        do {
            result = try await client.range(prefix: config.prefix + (zone.map { "\($0)/" } ?? ""))
        } catch {
            await client.shutdown()
            printError("zonewall: \(error)")
            throw ExitCode(2)
        }
        await client.shutdown()
        for kv in result.kvs {
            switch MemberValue.event(key: kv.key, value: kv.value, prefix: config.prefix) {
            case .success(let m):
                // The instance is anyone's who may register: escaped, it keeps the columns and the terminal intact.
                print("\(m.key.zone)\t\(Diagnostic.escaped(m.key.instance))\t\(m.addresses.map(\.description).joined(separator: ","))\(kv.lease != 0 ? "\tlease \(String(kv.lease, radix: 16))" : "")")
            case .failure(let r):
                print("# ignored \(Diagnostic.escaped(r.key)): \(Diagnostic.escaped(r.reason))")
            }
        }
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { true } else { false } }
}
