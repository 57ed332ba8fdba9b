import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOSSL
import Synchronization
import ZonePolicy

/// Where etcd is and how to reach it.
public struct EtcdConfiguration: Sendable {
    /// `HOST:PORT` or `http(s)://HOST:PORT`; tried in order, the next one when one fails.
    public var endpoints: [String]
    /// Keys live under it: `<prefix><zone>/<instance-id>`.
    public var prefix: String
    /// CA bundle (PEM) that signs the servers' certificates; enables TLS.
    public var caCertificate: String?
    /// Client certificate (PEM) for mTLS; enables TLS.
    public var certificate: String?
    /// The client certificate's private key (PEM).
    public var key: String?
    /// How long one unary request (range, put, lease call) may take.
    public var requestTimeout: Duration = .seconds(3)

    public init(endpoints: [String], prefix: String = "/zonewall/members/", caCertificate: String? = nil,
                certificate: String? = nil, key: String? = nil) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.caCertificate = caCertificate
        self.certificate = certificate
        self.key = key
    }

    /// Whether the endpoints are spoken to over TLS.
    public var usesTLS: Bool { caCertificate != nil || certificate != nil || endpoints.contains { $0.hasPrefix("https://") } }

    /// Why `endpoint` is not `HOST:PORT` or `http(s)://HOST:PORT` (a trailing `/` allowed);
    /// nil when it is. HOST is a name (letters, digits, `-`, `.`), an IPv4 address or `[IPv6]`;
    /// PORT is 1 to 65535.
    public static func endpointProblem(_ endpoint: String) -> String? {
        var rest = Substring(endpoint)
        if let scheme = endpoint.range(of: "://") {
            let name = endpoint[..<scheme.lowerBound]
            guard name == "http" || name == "https" else { return "scheme '\(name)' is not http or https" }
            rest = endpoint[scheme.upperBound...]
            if rest.hasSuffix("/") { rest = rest.dropLast() }
        }
        guard let colon = rest.lastIndex(of: ":") else { return "no port (HOST:PORT)" }
        let port = rest[rest.index(after: colon)...], host = rest[..<colon]
        guard !port.isEmpty, port.allSatisfy({ ("0"..."9").contains($0) }), let n = Int(port), (1...65535).contains(n) else {
            return "port '\(port)' is not 1 to 65535"
        }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            guard let a = IPPrefix.parse(String(host.dropFirst().dropLast())), a.family == .ipv6, a.length == 128 else {
                return "'\(host)' is not an IPv6 address"
            }
            return nil
        }
        if let why = numericHostProblem(host) { return why }
        let allowed = host.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == ".") }
        guard !host.isEmpty, allowed, !host.hasPrefix("-"), !host.hasPrefix("."), !host.contains("..") else {
            return "host '\(host)' is not a host name or an address"
        }
        return nil
    }

    /// A host written as numbers is an IPv4 address, and only the dotted quad is taken: the
    /// resolver reads other numeric forms the inet_aton way, `256.1.1.1` as a name to look up,
    /// `1.2.3` as 1.2.0.3, `010.0.0.1` (octal) as 8.0.0.1, `0x7f.1` as 127.0.0.1, sending the client
    /// to another host than the one written. nil for a host name (a label that is not a number).
    static func numericHostProblem(_ host: Substring) -> String? {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        func isDecimal(_ l: Substring) -> Bool { !l.isEmpty && l.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        func isHex(_ l: Substring) -> Bool {
            (l.hasPrefix("0x") || l.hasPrefix("0X")) && l.dropFirst(2).allSatisfy(\.isHexDigit)
        }
        // Digits and dots only (an empty label included: "1.2.3.4.", "1..2"), or C-style numbers.
        let digitsAndDots = !host.isEmpty && host.utf8.allSatisfy { ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: ".") }
        guard digitsAndDots || labels.allSatisfy({ isDecimal($0) || isHex($0) }) else { return nil }
        let octets = labels.compactMap { l -> Int? in
            guard isDecimal(l), l.count <= 3, l == "0" || !l.hasPrefix("0") else { return nil }
            return Int(l).flatMap { $0 <= 255 ? $0 : nil }
        }
        guard labels.count == 4, octets.count == 4 else {
            return "host '\(host)' is not an IPv4 address: write four numbers 0 to 255 in decimal, without leading zeros (a.b.c.d)"
        }
        return nil
    }

    /// The TLS settings, with every file given loaded and checked now: a file that is not what
    /// it should be is an error naming it, at startup, not a handshake failing later forever.
    /// nil without TLS.
    public func tlsConfiguration() throws -> TLSConfiguration? {
        guard usesTLS else { return nil }
        // TLS is for every endpoint or none: one written http:// would be the plaintext fallback.
        if let plain = endpoints.first(where: { $0.hasPrefix("http://") }) { throw EtcdError.plaintextWithTLS(plain) }
        func read(_ what: String, _ path: String) throws -> [UInt8] {
            do { return try Self.readFile(path) } catch {
                throw EtcdError.badFile(what: what, path: path, reason: "cannot read it: \(error)")
            }
        }
        func certificates(_ what: String, _ path: String) throws -> [NIOSSLCertificate] {
            let bytes = try read(what, path)
            guard String(decoding: bytes, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                throw EtcdError.badFile(what: what, path: path, reason: "no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
            }
            let certs: [NIOSSLCertificate]
            do { certs = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
                throw EtcdError.badFile(what: what, path: path, reason: "not a valid PEM certificate (\(error))")
            }
            guard !certs.isEmpty else { throw EtcdError.badFile(what: what, path: path, reason: "no PEM certificate in it") }
            return certs
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = caCertificate { tls.trustRoots = .certificates(try certificates("CA certificate", ca)) }
        if let cert = certificate { tls.certificateChain = try certificates("client certificate", cert).map { .certificate($0) } }
        if let key {
            let bytes = try read("client key", key)
            do { tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: bytes, format: .pem)) } catch {
                throw EtcdError.badFile(what: "client key", path: key, reason: "not a PEM private key (\(error))")
            }
        }
        if let cert = certificate, let key {
            // The key must be the private half of the certificate's public key, or every handshake
            // fails and the daemon stays disconnected. BoringSSL compares the two public keys
            // (EVP_PKEY_eq) when a context takes the key after the certificate chain, and refuses
            // the key when they differ; the context is built here for that check alone.
            do { _ = try NIOSSLContext(configuration: tls) } catch NIOSSLError.failedToLoadPrivateKey {
                throw EtcdError.badFile(what: "client key", path: key,
                                        reason: "does not match the client certificate \(cert) (the key's public key is not the certificate's)")
            } catch {
                throw EtcdError.badFile(what: "client certificate", path: cert, reason: "cannot be used with the client key \(key) (\(error))")
            }
        }
        return tls
    }

    /// Why a file could not be read: an errno (ENOENT, EACCES, EISDIR for a directory), or a
    /// FIFO, socket or device, whose reading could wait for ever or never end.
    enum ReadFailure: Error, CustomStringConvertible {
        case errno(Int32)
        case notRegular

        var description: String {
            switch self {
            case .errno(let e): String(cString: strerror(e))
            case .notRegular: "not a regular file"
            }
        }
    }

    /// A file's bytes.
    static func readFile(_ path: String) throws(ReadFailure) -> [UInt8] {
        // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .errno(errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .errno(errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw .errno(EISDIR) }
        if (st.st_mode & S_IFMT) != S_IFREG { throw .notRegular }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .errno(errno)
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[..<n])
        }
    }

    /// The base URLs of the endpoints.
    var baseURLs: [String] {
        endpoints.map { e in
            if e.hasPrefix("http://") || e.hasPrefix("https://") { return e.hasSuffix("/") ? String(e.dropLast()) : e }
            return (usesTLS ? "https://" : "http://") + e
        }
    }
}

/// A failure talking to etcd, with what was asked and what came back.
public enum EtcdError: Error, CustomStringConvertible, Sendable {
    /// No endpoint answered.
    case unreachable(String)
    /// etcd answered with an error (the gateway's gRPC status code and message).
    case server(path: String, status: Int, message: String)
    /// An answer that does not parse.
    case malformed(path: String, String)
    /// The watch was cancelled by etcd because its start revision was compacted away.
    case compacted(Int64)
    /// An answer larger than the client reads.
    case tooLarge(path: String, limit: Int)
    /// A TLS file (`what`: CA certificate, client certificate, client key) that cannot be used.
    case badFile(what: String, path: String, reason: String)
    /// An `http://` endpoint among TLS settings: it would be spoken to in plaintext.
    case plaintextWithTLS(String)

    public var description: String {
        switch self {
        case .unreachable(let why): "etcd unreachable: \(why)"
        case .server(let path, let status, let message): "etcd \(path): HTTP \(status): \(message)"
        case .malformed(let path, let why): "etcd \(path): malformed answer: \(why)"
        case .compacted(let rev): "etcd watch: revision compacted (compact revision \(rev))"
        case .tooLarge(let path, let limit): "etcd \(path): answer larger than \(limit) bytes"
        case .badFile(let what, let path, let reason): "etcd \(what) \(path): \(reason)"
        case .plaintextWithTLS(let endpoint):
            "etcd endpoint \(endpoint) is plaintext (http://) but TLS is asked for (a CA, a client certificate or an https:// endpoint): write https:// or HOST:PORT"
        }
    }
}

/// One key-value pair as etcd holds it.
public struct EtcdKeyValue: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]
    public var modRevision: Int64
    public var lease: Int64
}

/// One change a watch reports.
public struct EtcdWatchEvent: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case put, delete }
    public var kind: Kind
    public var kv: EtcdKeyValue
}

/// etcd's v3 API through its JSON gRPC gateway (`/v3/kv/range`, `/v3/watch`, `/v3/lease/…`),
/// over async-http-client: keys and values are base64, 64-bit numbers are JSON strings.
///
/// The gateway is part of every etcd server (3.4 and later), needs no generated code, and
/// streams a watch as one JSON object per line.
public final class EtcdClient: Sendable {
    private let http: HTTPClient
    private let urls: [String]
    /// The endpoint that last answered: requests start there.
    private let current = Mutex(0)
    public let configuration: EtcdConfiguration

    public init(_ configuration: EtcdConfiguration) throws {
        precondition(!configuration.endpoints.isEmpty, "no etcd endpoints")
        self.configuration = configuration
        self.urls = configuration.baseURLs
        var config = HTTPClient.Configuration()
        config.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(2), read: nil)
        config.httpVersion = .http1Only
        config.tlsConfiguration = try configuration.tlsConfiguration()
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    private let isShutDown = Mutex(false)

    /// Closes the connections. Call once, before the client goes away.
    public func shutdown() async {
        guard !isShutDown.withLock({ let was = $0; $0 = true; return was }) else { return }
        try? await http.shutdown()
    }

    /// A client dropped without `shutdown()` (its owner's task cancelled or failed) still closes
    /// its connections, rather than leaking them (async-http-client traps on that in debug builds).
    deinit {
        if !isShutDown.withLock({ $0 }) { http.shutdown { _ in } }
    }

    // MARK: Unary calls

    /// Keys asked for in a list's first page: small enough that a page of values at etcd's
    /// largest request size (1.5 MiB, 2 MiB in base64) stays far below `maximumResponseBytes`
    /// and the request deadline.
    public static let firstPageLimit = 8
    /// At most this many keys per page, whatever their size.
    public static let maximumPageLimit = 10_000
    /// A page after the first asks for about this many bytes, going by the previous page's size per key.
    public static let pageBytes = 4 << 20
    /// The largest answer read; a bigger one is `EtcdError.tooLarge`.
    public static let maximumResponseBytes = 64 << 20

    /// Every key under `prefix`, and the store's revision at that moment.
    ///
    /// Read in pages (`limit`, each continuing after the last key of the one before), all at the
    /// revision of the first, so the list is one consistent snapshot however large its values:
    /// one request for everything could outgrow the request deadline or the answer limit.
    /// `pageLimit` fixes the page size (tests); `afterPage` runs between pages (tests).
    /// Throws `EtcdError.compacted` when the first page's revision is compacted meanwhile.
    public func range(prefix: String, pageLimit: Int? = nil,
                      afterPage: (@Sendable () async throws -> Void)? = nil) async throws -> (kvs: [EtcdKeyValue], revision: Int64) {
        let end = b64(Self.rangeEnd(prefix))
        var from = Array(prefix.utf8)
        var limit = pageLimit ?? Self.firstPageLimit
        var revision: Int64 = 0
        var kvs: [EtcdKeyValue] = []
        while true {
            let page: RangeResponse, bytes: Int
            do {
                (page, bytes) = try await exchange("/v3/kv/range", RangeRequest(key: b64(from), range_end: end, limit: String(limit),
                                                                                revision: revision == 0 ? nil : String(revision)))
            } catch EtcdError.tooLarge where limit > 1 {
                limit = max(1, limit / 2)  // fewer keys per page, same page again
                continue
            } catch EtcdError.server(_, _, let message) where revision != 0 && message.contains("required revision has been compacted") {
                throw EtcdError.compacted(revision)
            }
            if revision == 0 { revision = page.header?.revision?.value ?? 0 }
            let raw = page.kvs ?? []
            kvs.append(contentsOf: try raw.map { try $0.decoded() })
            // The next page starts just after the last key, as bytes: a key need not be UTF-8.
            guard page.more == true, let last = raw.last?.key.flatMap({ Data(base64Encoded: $0) }) else { break }
            from = Array(last) + [0]
            if pageLimit == nil { limit = min(max(1, Self.pageBytes / max(1, bytes / raw.count)), Self.maximumPageLimit) }
            try await afterPage?()
        }
        return (kvs, revision)
    }

    /// The key-value at exactly `key`; nil when there is none.
    public func get(_ key: String) async throws -> EtcdKeyValue? {
        let r: RangeResponse = try await call("/v3/kv/range", RangeRequest(key: b64(key), range_end: nil))
        return try r.kvs?.first?.decoded()
    }

    /// Stores `value` at `key`, attached to `lease` (0: none). Returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        let r: HeaderOnly = try await call("/v3/kv/put", PutRequest(key: b64(key), value: Data(value).base64EncodedString(), lease: lease == 0 ? nil : String(lease)))
        return r.header?.revision?.value ?? 0
    }

    /// Deletes `key`, or every key under it with `prefix: true`. Returns how many went.
    @discardableResult
    public func delete(_ key: String, prefix: Bool = false) async throws -> Int64 {
        let r: DeleteResponse = try await call("/v3/kv/deleterange", RangeRequest(key: b64(key), range_end: prefix ? b64(Self.rangeEnd(key)) : nil))
        return r.deleted?.value ?? 0
    }

    /// Compacts the history up to `revision` (tests use it to force `ErrCompacted`).
    public func compact(_ revision: Int64) async throws {
        let _: HeaderOnly = try await call("/v3/kv/compaction", CompactRequest(revision: String(revision), physical: true))
    }

    /// A new lease of `ttl` seconds; returns its id and the TTL granted.
    public func grant(ttl: Int64) async throws -> (id: Int64, ttl: Int64) {
        let r: LeaseGrantResponse = try await call("/v3/lease/grant", LeaseGrantRequest(TTL: String(ttl)))
        guard let id = r.ID?.value, id != 0 else { throw EtcdError.malformed(path: "/v3/lease/grant", r.error ?? "no lease id") }
        return (id, r.TTL?.value ?? ttl)
    }

    /// Renews a lease once; returns its remaining TTL, 0 when etcd no longer knows it.
    public func keepAlive(_ id: Int64) async throws -> Int64 {
        // The gateway maps the bidirectional stream to one request, one answer.
        let r: Wrapped<LeaseKeepAliveResponse> = try await call("/v3/lease/keepalive", LeaseID(ID: String(id)))
        if let e = r.error { throw EtcdError.server(path: "/v3/lease/keepalive", status: 200, message: e.message ?? "error") }
        return r.result?.TTL?.value ?? 0
    }

    /// Revokes a lease: every key attached to it is deleted at once.
    public func revoke(_ id: Int64) async throws {
        let _: HeaderOnly = try await call("/v3/lease/revoke", LeaseID(ID: String(id)))
    }

    /// Sends one request, starting at the endpoint that last answered and moving on when one
    /// cannot be reached. An error etcd itself returns is not retried elsewhere.
    private func call<Request: Encodable, Response: Decodable>(_ path: String, _ body: Request) async throws -> Response {
        try await exchange(path, body).response
    }

    /// `call`, with the size of the answer in bytes.
    private func exchange<Request: Encodable, Response: Decodable>(_ path: String, _ body: Request) async throws -> (response: Response, bytes: Int) {
        let payload = try JSONEncoder().encode(body)
        let start = current.withLock { $0 }
        var failures: [String] = []
        for i in 0..<urls.count {
            let n = (start + i) % urls.count
            var request = HTTPClientRequest(url: urls[n] + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: payload))
            let response: HTTPClientResponse
            let bytes: ByteBuffer
            do {
                response = try await http.execute(request, timeout: .nanoseconds(configuration.requestTimeout.nanoseconds))
                bytes = try await response.body.collect(upTo: Self.maximumResponseBytes)
            } catch is NIOTooManyBytesError {
                // The endpoint answered: another one would send as much.
                current.withLock { $0 = n }
                throw EtcdError.tooLarge(path: path, limit: Self.maximumResponseBytes)
            } catch {
                failures.append("\(urls[n]): \(error)")
                continue
            }
            current.withLock { $0 = n }
            let data = Data(buffer: bytes)
            guard response.status == .ok else {
                let message = (try? JSONDecoder().decode(GatewayError.self, from: data)).flatMap { $0.message ?? $0.error } ?? String(decoding: data, as: UTF8.self)
                throw EtcdError.server(path: path, status: Int(response.status.code), message: message)
            }
            do {
                return (try JSONDecoder().decode(Response.self, from: data), bytes.readableBytes)
            } catch {
                throw EtcdError.malformed(path: path, "\(error)")
            }
        }
        throw EtcdError.unreachable(failures.joined(separator: "; "))
    }

    // MARK: Watch

    /// Watches every key under `prefix` from `revision` on. Yields each batch of events as it
    /// arrives; ends by throwing: `EtcdError.compacted` when etcd cancelled the watch because
    /// `revision` is gone, anything else when the stream broke.
    public func watch(prefix: String, from revision: Int64) -> AsyncThrowingStream<[EtcdWatchEvent], Error> {
        let (stream, continuation) = AsyncThrowingStream<[EtcdWatchEvent], Error>.makeStream()
        let task = Task {
            do {
                try await self.runWatch(prefix: prefix, from: revision, into: continuation)
                continuation.finish(throwing: EtcdError.unreachable("watch stream ended"))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func runWatch(prefix: String, from revision: Int64,
                          into continuation: AsyncThrowingStream<[EtcdWatchEvent], Error>.Continuation) async throws {
        let body = try JSONEncoder().encode(WatchRequest(create_request: .init(key: b64(prefix), range_end: b64(Self.rangeEnd(prefix)),
                                                                               start_revision: String(revision))))
        let n = current.withLock { $0 }
        var request = HTTPClientRequest(url: urls[n] + "/v3/watch")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .nanoseconds(configuration.requestTimeout.nanoseconds))
        } catch {
            current.withLock { $0 = (n + 1) % urls.count }  // the next attempt tries the next endpoint
            throw EtcdError.unreachable("\(urls[n]): \(error)")
        }
        guard response.status == .ok else { throw EtcdError.server(path: "/v3/watch", status: Int(response.status.code), message: "watch refused") }
        var pending: [UInt8] = []
        // Where the search for the next line end resumes: a large message arrives in many chunks,
        // and searching it from its start for each one was quadratic.
        var scanned = 0
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            while let newline = pending[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                scanned = 0
                if line.isEmpty { continue }
                let message: Wrapped<WatchResponse>
                do { message = try JSONDecoder().decode(Wrapped<WatchResponse>.self, from: Data(line)) } catch {
                    throw EtcdError.malformed(path: "/v3/watch", "\(error)")
                }
                if let e = message.error { throw EtcdError.server(path: "/v3/watch", status: 200, message: e.message ?? "error") }
                guard let r = message.result else { continue }
                if let compact = r.compact_revision?.value, compact != 0 { throw EtcdError.compacted(compact) }
                if r.canceled == true { throw EtcdError.server(path: "/v3/watch", status: 200, message: "watch cancelled: \(r.cancel_reason ?? "?")") }
                let events = try (r.events ?? []).map { e in
                    EtcdWatchEvent(kind: e.type == "DELETE" ? .delete : .put, kv: try (e.kv ?? RawKV()).decoded())
                }
                if !events.isEmpty { continuation.yield(events) }
            }
            scanned = pending.count
        }
    }

    // MARK: Wire types

    /// The range end that covers every key starting with `prefix`: the prefix with its last byte incremented.
    static func rangeEnd(_ prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff { bytes[bytes.count - 1] = last + 1; return bytes }
            bytes.removeLast()
        }
        return [0]  // every key
    }

    private func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
    private func b64(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }
}

/// A 64-bit number the gateway writes as a JSON string (or, leniently, a number).
struct Int64Text: Decodable, Hashable {
    var value: Int64
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self), let v = Int64(s) { value = v; return }
        value = try c.decode(Int64.self)
    }
}

struct Header: Decodable { var revision: Int64Text? }
struct HeaderOnly: Decodable { var header: Header? }
struct GatewayError: Decodable { var error: String?; var message: String?; var code: Int? }
struct Wrapped<T: Decodable>: Decodable { var result: T?; var error: GatewayError? }

struct RangeRequest: Encodable { var key: String; var range_end: String?; var limit: String? = nil; var revision: String? = nil }
struct RawKV: Decodable {
    var key: String?; var value: String?; var mod_revision: Int64Text?; var lease: Int64Text?
    func decoded() throws -> EtcdKeyValue {
        guard let k = key.flatMap({ Data(base64Encoded: $0) }) else { throw EtcdError.malformed(path: "kv", "key is not base64") }
        let v = value.flatMap { Data(base64Encoded: $0) } ?? Data()
        return EtcdKeyValue(key: String(decoding: k, as: UTF8.self), value: Array(v), modRevision: mod_revision?.value ?? 0, lease: lease?.value ?? 0)
    }
}
struct RangeResponse: Decodable { var header: Header?; var kvs: [RawKV]?; var more: Bool? }
struct PutRequest: Encodable { var key: String; var value: String; var lease: String? }
struct DeleteResponse: Decodable { var header: Header?; var deleted: Int64Text? }
struct CompactRequest: Encodable { var revision: String; var physical: Bool }
struct LeaseGrantRequest: Encodable { var TTL: String }
struct LeaseGrantResponse: Decodable { var ID: Int64Text?; var TTL: Int64Text?; var error: String? }
struct LeaseID: Encodable { var ID: String }
struct LeaseKeepAliveResponse: Decodable { var ID: Int64Text?; var TTL: Int64Text? }
struct WatchRequest: Encodable {
    struct Create: Encodable { var key: String; var range_end: String; var start_revision: String }
    var create_request: Create
}
struct WatchResponse: Decodable {
    struct Event: Decodable { var type: String?; var kv: RawKV? }
    var header: Header?; var created: Bool?; var canceled: Bool?; var compact_revision: Int64Text?; var cancel_reason: String?; var events: [Event]?
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
