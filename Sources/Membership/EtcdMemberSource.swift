import Foundation
import Logging

/// Zone members from etcd: list the prefix, then watch from that list's revision + 1, so that
/// nothing is missed and nothing is applied twice.
///
/// On compaction or a broken watch it lists again (a `.resynced` replaces everything). When
/// etcd cannot be reached it yields `.lost` once and retries with exponential backoff; the
/// consumer keeps the last members in force meanwhile (fail-static). While watching, a cheap
/// request every `probeInterval` makes a silent loss of the server visible.
public final class EtcdMemberSource: MemberSource {
    let client: EtcdClient
    let prefix: String
    let logger: Logger
    /// Backoff between reconnection attempts: from `minBackoff`, doubling, at most `maxBackoff`.
    let minBackoff: Duration
    let maxBackoff: Duration
    /// How often a watching source checks that etcd still answers.
    let probeInterval: Duration
    /// A pause between a list and its watch; only tests widen it, to let a compaction in between.
    let watchDelay: Duration

    public init(client: EtcdClient, logger: Logger, minBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5),
                probeInterval: Duration = .seconds(2), watchDelay: Duration = .zero) {
        self.client = client
        self.prefix = client.configuration.prefix
        self.logger = logger
        self.minBackoff = minBackoff
        self.maxBackoff = maxBackoff
        self.probeInterval = probeInterval
        self.watchDelay = watchDelay
    }

    public func events() -> AsyncStream<MemberEvent> {
        let (stream, continuation) = AsyncStream<MemberEvent>.makeStream()
        let task = Task { await self.run(continuation) }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func run(_ out: AsyncStream<MemberEvent>.Continuation) async {
        var backoff = minBackoff
        var lost = false
        /// Why etcd was last lost: a new reason is logged and reported again, so that status
        /// and metrics show the current one rather than the first.
        var lostReason: String?
        while !Task.isCancelled {
            do {
                let (kvs, revision) = try await client.range(prefix: prefix)
                var members: [Member] = []
                var rejected: [MemberRejection] = []
                for kv in kvs {
                    switch MemberValue.event(key: kv.key, value: kv.value, prefix: prefix) {
                    case .success(let m): members.append(m)
                    case .failure(let r): rejected.append(r)
                    }
                }
                out.yield(.resynced(members, rejected: rejected, revision: revision))
                if lost { logger.info("etcd reachable again", metadata: ["revision": "\(revision)", "members": "\(members.count)"]) }
                lost = false
                lostReason = nil
                backoff = minBackoff
                if watchDelay > .zero { try await Task.sleep(for: watchDelay) }
                try await watch(from: revision + 1, out)
            } catch is CancellationError {
                break
            } catch EtcdError.compacted(let compact) {
                logger.warning("etcd watch fell behind a compaction; listing again", metadata: ["compact_revision": "\(compact)"])
            } catch {
                if Task.isCancelled { break }
                let reason = "\(error)"
                if !lost {
                    logger.error("etcd lost; keeping the last known members", metadata: ["error": "\(reason)"])
                } else if reason != lostReason {
                    logger.error("etcd still lost, for another reason; keeping the last known members", metadata: ["error": "\(reason)"])
                }
                if reason != lostReason { out.yield(.lost(reason)) }
                lost = true
                lostReason = reason
                let jitter = Double.random(in: 0.8...1.2)
                try? await Task.sleep(for: backoff * jitter)
                backoff = min(backoff * 2, maxBackoff)
            }
        }
        out.finish()
    }

    /// Follows the watch until it breaks (throws) or etcd stops answering the probe.
    private func watch(from revision: Int64, _ out: AsyncStream<MemberEvent>.Continuation) async throws {
        let prefix = self.prefix
        let client = self.client
        let probe = probeInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await batch in client.watch(prefix: prefix, from: revision) {
                    for e in batch {
                        switch e.kind {
                        case .delete:
                            switch MemberValue.key(e.kv.key, prefix: prefix) {
                            case .success(let k): out.yield(.removed(k))
                            case .failure: out.yield(.cleared(e.kv.key))
                            }
                        case .put:
                            switch MemberValue.event(key: e.kv.key, value: e.kv.value, prefix: prefix) {
                            case .success(let m): out.yield(.added(m))
                            case .failure(let r):
                                if case .success(let k) = MemberValue.key(e.kv.key, prefix: prefix) { out.yield(.removed(k)) }
                                out.yield(.rejected(r))
                            }
                        }
                    }
                    // A delete's key-value carries the revision of the delete.
                    if let latest = batch.map(\.kv.modRevision).max(), latest > 0 { out.yield(.progressed(latest)) }
                }
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: probe)
                    _ = try await client.range(prefix: "\u{0}zonewall-probe")
                }
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
