import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Serves `GET /metrics` on a loopback address with SwiftNIO.
public final class MetricsServer: Sendable {
    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup

    /// Binds `host:port`; refuses non-loopback hosts, since metrics reveal the policy's shape.
    public init(host: String, port: Int, render: @escaping @Sendable () -> String) async throws {
        guard host == "127.0.0.1" || host == "::1" || host == "localhost" else {
            throw MetricsServerError.notLoopback(host)
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = Connections()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                // A client that connects and sends nothing must not hold a descriptor for ever:
                // the daemon needs its descriptors for the policy files, netlink and its state.
                guard open.enter() else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.leave() }
                // The initializer runs on the channel's event loop: the handlers go in directly.
                do {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                    try pipeline.configureHTTPServerPipeline()
                    try pipeline.addHandler(MetricsHandler(render: render))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: host, port: port).get()
    }

    /// A connection with no traffic for this long is closed.
    static let idleTimeout = TimeAmount.seconds(5)
    /// Connections served at once; more are closed as they arrive (a scraper needs one).
    static let maxConnections = 32

    /// The open connections, counted so that no client can take every descriptor.
    private final class Connections: Sendable {
        private let count = Atomic<Int>(0)

        func enter() -> Bool {
            if count.wrappingAdd(1, ordering: .relaxed).newValue <= MetricsServer.maxConnections { return true }
            count.wrappingSubtract(1, ordering: .relaxed)
            return false
        }

        func leave() { count.wrappingSubtract(1, ordering: .relaxed) }
    }

    /// The bound port (useful when asked for port 0).
    public var port: Int? { channel.localAddress?.port }

    public func close() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// The metrics endpoint could not be opened: a configuration error (the address is taken, or
/// not one of this host's), reported with the address and the system's reason.
public struct MetricsUnavailable: Error, CustomStringConvertible {
    public var address: String
    public var reason: String

    public init(address: String, error: any Error) {
        self.address = address
        if let io = error as? IOError {
            reason = String(cString: strerror(io.errnoCode))
        } else {
            reason = "\(error)"
        }
    }

    public var description: String { "cannot serve metrics on \(address): \(reason)" }
}

public enum MetricsServerError: Error, CustomStringConvertible {
    case notLoopback(String)
    public var description: String {
        switch self {
        case .notLoopback(let h): "metrics address \(h) is not a loopback address (use 127.0.0.1 or ::1)"
        }
    }
}

private final class MetricsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let render: @Sendable () -> String

    init(render: @escaping @Sendable () -> String) { self.render = render }

    /// Idle (`IdleStateHandler`) or broken: the connection is closed.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let request) = unwrapInboundIn(data) else { return }
        let found = request.uri.split(separator: "?", omittingEmptySubsequences: false).first == "/metrics"
        let readable = request.method == .GET || request.method == .HEAD
        let status: HTTPResponseStatus = !found ? .notFound : readable ? .ok : .methodNotAllowed
        let body = switch status {
        case .ok: render()
        case .methodNotAllowed: "\(request.method) is not allowed: /metrics answers GET and HEAD\n"
        default: "not found: try /metrics\n"
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: request.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        // HEAD: the headers of the GET, without its body.
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
