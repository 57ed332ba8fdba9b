import ArgumentParser
import Foundation
import Membership

/// etcd connection options, shared by `run` and `member`. Each falls back to an environment
/// variable (`ZONEWALL_ETCD_ENDPOINTS`, …), so a systemd `EnvironmentFile=` can set them.
struct EtcdOptions: ParsableArguments {
    @Option(help: ArgumentHelp("etcd endpoints, comma-separated (env ZONEWALL_ETCD_ENDPOINTS).", valueName: "HOST:PORT[,HOST:PORT…]"))
    var etcdEndpoints: String?

    @Option(help: ArgumentHelp("Key prefix of the members: <prefix><zone>/<instance-id> (env ZONEWALL_ETCD_PREFIX; default /zonewall/members/).", valueName: "PREFIX"))
    var etcdPrefix: String?

    @Option(help: ArgumentHelp("CA certificate (PEM) of the etcd servers; enables TLS (env ZONEWALL_ETCD_CACERT).", valueName: "FILE"))
    var etcdCacert: String?

    @Option(help: ArgumentHelp("Client certificate (PEM) for etcd mTLS (env ZONEWALL_ETCD_CERT).", valueName: "FILE"))
    var etcdCert: String?

    @Option(help: ArgumentHelp("Client key (PEM) for etcd mTLS (env ZONEWALL_ETCD_KEY).", valueName: "FILE"))
    var etcdKey: String?

    private static func env(_ name: String) -> String? {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else { return nil }
        return v
    }

    /// The configuration, or nil when no endpoint is given anywhere.
    func configuration() throws -> EtcdConfiguration? {
        guard let endpoints = (etcdEndpoints ?? Self.env("ZONEWALL_ETCD_ENDPOINTS")) else { return nil }
        let list = endpoints.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ValidationError("--etcd-endpoints is empty") }
        for e in list {
            if let why = EtcdConfiguration.endpointProblem(e) {
                throw ValidationError("etcd endpoint '\(e)' is not HOST:PORT or http(s)://HOST:PORT: \(why)")
            }
        }
        var prefix = etcdPrefix ?? Self.env("ZONEWALL_ETCD_PREFIX") ?? "/zonewall/members/"
        if !prefix.hasSuffix("/") { prefix += "/" }
        let ca = etcdCacert ?? Self.env("ZONEWALL_ETCD_CACERT")
        let cert = etcdCert ?? Self.env("ZONEWALL_ETCD_CERT")
        let key = etcdKey ?? Self.env("ZONEWALL_ETCD_KEY")
        guard (cert == nil) == (key == nil) else { throw ValidationError("--etcd-cert and --etcd-key go together") }
        let configuration = EtcdConfiguration(endpoints: list, prefix: prefix, caCertificate: ca, certificate: cert, key: key)
        // Every TLS file loaded now: a bad one is a usage error naming it, not a daemon that
        // stays disconnected forever.
        do { _ = try configuration.tlsConfiguration() } catch { throw ValidationError("\(error)") }
        return configuration
    }

    /// The configuration; a usage error when no endpoint is given.
    func requiredConfiguration() throws -> EtcdConfiguration {
        guard let c = try configuration() else { throw ValidationError("--etcd-endpoints (or ZONEWALL_ETCD_ENDPOINTS) is required") }
        return c
    }
}
