import Foundation

/// Where logged packets come from: the kernel's NFLOG group, the daemon's stream, or a test.
public protocol PacketSource: Sendable {
    /// The packets as they arrive. The stream ends on `stop()` or on an error.
    func packets() -> AsyncThrowingStream<LoggedPacket, any Error>
    /// Ends the stream and releases the source.
    func stop()
    /// Packets the source knows it lost (socket overruns, sequence gaps); not the kernel's rate limit.
    var lost: Int { get }
}

/// A source fed by the test: `send` packets, then `finish`.
public final class InMemoryPacketSource: PacketSource, @unchecked Sendable {
    private let stream: AsyncThrowingStream<LoggedPacket, any Error>
    private let continuation: AsyncThrowingStream<LoggedPacket, any Error>.Continuation
    /// Losses a test wants the source to report.
    public var lost: Int = 0

    /// An empty source.
    public init() {
        (stream, continuation) = AsyncThrowingStream.makeStream()
    }

    /// What `send` delivered.
    public func packets() -> AsyncThrowingStream<LoggedPacket, any Error> { stream }

    /// Delivers one packet.
    public func send(_ p: LoggedPacket) { continuation.yield(p) }

    /// Ends the stream, with an error if given.
    public func finish(throwing error: (any Error)? = nil) { continuation.finish(throwing: error) }

    /// Ends the stream.
    public func stop() { continuation.finish() }
}
