/// The ruleset generation one commit after `generation`: the kernel counts up by one and
/// skips 0 when it wraps.
public func generation(after generation: UInt32) -> UInt32 {
    generation &+ 1 == 0 ? 1 : generation &+ 1
}

/// A snapshot of one table as the kernel holds it, with the generation it was read at.
public struct KernelSnapshot: Sendable {
    /// The table, or nil when it does not exist.
    public var table: Table?
    /// The ruleset generation (`NFT_MSG_GETGEN`) the dump was consistent with.
    public var generation: UInt32

    public init(table: Table?, generation: UInt32) {
        self.table = table
        self.generation = generation
    }
}

import Synchronization

/// The one seam between zonewall and a kernel's nftables: netlink for real
/// (`Netfilter.NetlinkKernel`), or `InMemoryKernel` in tests.
public protocol KernelRuleset: Sendable {
    /// Reads `family`/`name` with all its chains, rules, sets and elements.
    func dump(family: Family, table name: String) throws -> KernelSnapshot

    /// Like `dump`, but the sets come without their elements: the table's skeleton.
    func dumpSkeleton(family: Family, table name: String) throws -> KernelSnapshot

    /// Reads the elements of `sets` of `family`/`table` as they are now, decoded with the
    /// given declarations, not tied to one generation. For sets that no transaction in flight
    /// touches: a staged build verifies each stage's sets while the next stage is committed.
    func elements(of sets: [NamedSet], family: Family, table: String) throws -> [NamedSet]

    /// Applies the transaction atomically: all of it, or (on error) none of it.
    ///
    /// With `generation`, the kernel refuses the batch (`ERESTART`) if the ruleset moved
    /// since that generation was read.
    func apply(_ transaction: Transaction, expectingGeneration generation: UInt32?) throws

    /// Sends the transaction for validation only: the kernel checks every message, then aborts.
    func check(_ transaction: Transaction) throws

    /// The current ruleset generation: it moves with every committed transaction, anyone's.
    func generation() throws -> UInt32

    /// Subscribes to the kernel's change notifications: one `.changed` per committed
    /// transaction, with `touchedTable` true when it concerned `family`/`table`.
    func events(family: Family, table: String) throws -> KernelEvents
}

extension KernelRuleset {
    /// Change notifications about zonewall's own table, `inet zonewall`.
    public func events() throws -> KernelEvents {
        try events(family: .inet, table: "zonewall")
    }
}

/// Something that happened to a kernel's ruleset, as a change notification reports it.
public enum KernelEvent: Sendable, Hashable {
    /// One transaction was committed (the kernel's `NFT_MSG_NEWGEN` ends each batch's
    /// notifications): the new generation, the process that committed it (pid 0 for the
    /// kernel itself) and whether any of the batch's objects belong to the watched table.
    ///
    /// `onlyElementsOf`, when the commit touched the table, names the sets whose elements it
    /// added or deleted if that is all it did; nil when it did anything else to the table (a
    /// chain, rule or set, the table itself) or when that is not known.
    case changed(generation: UInt32, pid: UInt32, processName: String?, touchedTable: Bool, onlyElementsOf: Set<String>? = nil)
    /// Notifications were lost (`ENOBUFS`, or the consumer fell behind): the ruleset may have
    /// changed in any way since the previous event, so the caller must read it again.
    case overflow
}

/// A subscription to a kernel's change notifications: an `AsyncSequence` of `KernelEvent`,
/// one consumer at a time.
///
/// The subscription stops (its socket closed, its reader ended) when the iterating task is
/// cancelled, when `cancel()` is called, or when the last copy of the value and its iterator
/// go away. It throws only if the event source itself fails; `ENOBUFS` is `.overflow`, not
/// an error.
///
/// Events queue while nobody reads; past `bufferLimit` the newer ones are replaced by a single
/// `.overflow`, so a slow consumer costs memory only up to that limit and still learns it
/// must resync.
public struct KernelEvents: AsyncSequence, Sendable {
    public typealias Element = KernelEvent

    private let stream: AsyncThrowingStream<KernelEvent, any Error>
    private let subscription: Subscription

    /// Creates a subscription and the continuation its producer feeds, like
    /// `AsyncStream.makeStream`. `onTermination` of the continuation runs once when the
    /// consumer goes away, so the producer can stop.
    public static func makeEvents(bufferLimit: Int = 4096) -> (events: KernelEvents, continuation: Continuation) {
        let (stream, base) = AsyncThrowingStream<KernelEvent, any Error>.makeStream()
        let queue = Queue(limit: Swift.max(2, bufferLimit))
        return (KernelEvents(stream: stream, subscription: Subscription(base: base, queue: queue)),
                Continuation(base: base, queue: queue))
    }

    private init(stream: AsyncThrowingStream<KernelEvent, any Error>, subscription: Subscription) {
        self.stream = stream
        self.subscription = subscription
    }

    /// Ends the subscription: the events already queued are still delivered, then iteration ends.
    public func cancel() { subscription.base.finish() }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), subscription: subscription)
    }

    /// Iterates the events; holds the subscription open while it exists.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<KernelEvent, any Error>.Iterator
        let subscription: Subscription

        public mutating func next() async throws -> KernelEvent? {
            let event = try await base.next()
            if let event { subscription.queue.dequeued(event) }
            return event
        }
    }

    /// The producer's side: yields events, finishes, and learns when the consumer is gone.
    public struct Continuation: Sendable {
        let base: AsyncThrowingStream<KernelEvent, any Error>.Continuation
        let queue: Queue

        /// Queues an event; past the buffer limit, queues one `.overflow` and drops events
        /// until the consumer has read it.
        public func yield(_ event: KernelEvent) {
            queue.state.withLock { s in
                if s.dropping { return }
                if event == .overflow || s.queued >= queue.limit - 1 {
                    if case .enqueued = base.yield(.overflow) { s.queued += 1; s.dropping = true }
                } else if case .enqueued = base.yield(event) {
                    s.queued += 1
                }
            }
        }

        /// Ends the sequence, with an error if the source failed.
        public func finish(throwing error: (any Error)? = nil) { base.finish(throwing: error) }

        /// Sets what runs once when the consumer stops listening or the sequence finishes:
        /// where the producer stops its reader.
        public func onTermination(_ handler: @escaping @Sendable () -> Void) {
            base.onTermination = { _ in handler() }
        }
    }

    /// Counts queued events, since `AsyncThrowingStream` does not say how full it is.
    final class Queue: Sendable {
        struct State {
            var queued = 0
            /// True from queuing an `.overflow` until it is read: anything in between is covered
            /// by the resync the consumer does when it reads it.
            var dropping = false
        }
        let limit: Int
        let state = Mutex(State())
        init(limit: Int) { self.limit = limit }

        func dequeued(_ event: KernelEvent) {
            state.withLock { s in
                s.queued -= 1
                if event == .overflow { s.dropping = false }
            }
        }
    }

    /// Shared by every copy of the sequence and its iterator; the last one to go ends it.
    final class Subscription: Sendable {
        let base: AsyncThrowingStream<KernelEvent, any Error>.Continuation
        let queue: Queue
        init(base: AsyncThrowingStream<KernelEvent, any Error>.Continuation, queue: Queue) {
            self.base = base
            self.queue = queue
        }
        deinit { base.finish() }
    }
}
