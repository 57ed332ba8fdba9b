import Foundation
import Logging
import ZonePolicy

/// One instance registered in etcd under a lease, kept alive until it is stopped (`zonewall member add`).
///
/// The key disappears when the lease is revoked (a clean stop) or expires (the process died).
/// If etcd forgets the lease (expired during an outage), the registration grants a new one and
/// writes the key again; if the key is deleted while the lease lives, it writes the key again
/// under the same lease (checked at every renewal).
public struct Registration: Sendable {
    public let client: EtcdClient
    public let member: Member
    public let ttl: Int64
    /// Receives one line per thing that happened, as it happens.
    public let report: @Sendable (String) -> Void

    public init(client: EtcdClient, member: Member, ttl: Int64, report: @escaping @Sendable (String) -> Void) {
        self.client = client
        self.member = member
        self.ttl = ttl
        self.report = report
    }

    /// etcd's largest lease TTL (its `MaxLeaseTTL`), in seconds: a longer one is refused.
    public static let maximumTTL: Int64 = 9_000_000_000

    /// Parses a lease TTL, `10s`, `1m`, `2h` or seconds; nil unless it is 1 s to `maximumTTL`.
    public static func parseTTL(_ text: String) -> Int64? {
        var digits = Substring(text), factor: Int64 = 1
        for (suffix, f) in [("s", Int64(1)), ("m", 60), ("h", 3600)] where text.hasSuffix(suffix) {
            digits = text.dropLast(suffix.count); factor = f
            break
        }
        // "ms" ends in "s" too: its digits ("5m") are no number.
        guard digits.allSatisfy(\.isASCII), let n = Int64(digits) else { return nil }
        let (seconds, overflow) = n.multipliedReportingOverflow(by: factor)
        guard !overflow, (1...maximumTTL).contains(seconds) else { return nil }
        return seconds
    }

    /// The etcd key written.
    public var key: String { client.configuration.prefix + member.key.description }

    /// Registers and keeps the lease alive until the task is cancelled; then revokes the lease
    /// (best effort, a few seconds at most) and returns.
    ///
    /// Throws when etcd refuses the lease itself (HTTP 400 from `/v3/lease/grant`, e.g. a TTL
    /// over its maximum): asking again would be refused again, forever.
    public func run() async throws {
        var lease: Int64?
        var backoff: Duration = .milliseconds(200)
        while !Task.isCancelled {
            do {
                if lease == nil {
                    let granted = try await client.grant(ttl: ttl)
                    try await client.put(key, MemberValue.encode(member.addresses), lease: granted.id)
                    lease = granted.id
                    report("registered \(key) \(member.addresses.map(\.description).joined(separator: ",")) lease \(String(granted.id, radix: 16)) ttl \(granted.ttl)s")
                }
                try await Task.sleep(for: .milliseconds(max(ttl * 1000 / 3, 200)))
                if let id = lease {
                    if try await client.keepAlive(id) <= 0 {
                        report("lease \(String(id, radix: 16)) expired; registering again")
                        lease = nil
                    } else if try await client.get(key) == nil {
                        // Deleted by hand (etcdctl del) while the lease lives on: without the
                        // key the instance is no member, however long the lease is renewed.
                        try await client.put(key, MemberValue.encode(member.addresses), lease: id)
                        report("\(key) was deleted; registered again under lease \(String(id, radix: 16))")
                    }
                }
                backoff = .milliseconds(200)
            } catch is CancellationError {
                break
            } catch EtcdError.server(let path, 400, let message) where path == "/v3/lease/grant" {
                report("etcd refused the lease: \(message)")
                throw EtcdError.server(path: path, status: 400, message: message)
            } catch {
                if Task.isCancelled { break }
                report("etcd: \(error); retrying in \(backoff)")
                try? await Task.sleep(for: backoff)
                // Within the TTL, so a lease can be renewed or granted again before the member
                // expires; and a few seconds at most, however long the TTL.
                backoff = min(backoff * 2, .seconds(min(5, max(1, ttl / 3))))
            }
        }
        guard let id = lease else { return }
        // The task is cancelled: revoke from an unstructured task so the request is not cancelled with it.
        let client = self.client
        let revoked = await Task { () -> Error? in
            do { try await client.revoke(id); return nil } catch { return error }
        }.value
        if let revoked { report("could not revoke lease \(String(id, radix: 16)): \(revoked); \(key) expires with its TTL") }
        else { report("revoked lease \(String(id, radix: 16)); \(key) removed") }
    }
}
