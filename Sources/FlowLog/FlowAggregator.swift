import Foundation
import ZonePolicy

/// Classifies logged packets with the policy and folds repeats within a second into counts.
///
/// The first packet of a flow in a one-second window is reported at once (count 1), so a live
/// view is never late; its repeats in that window come as one record when the window closes.
public struct FlowAggregator {
    /// A flow's identity: everything in a record except the time and the count.
    struct Key: Hashable {
        var verdict: LogVerdict
        var hook: LogHook
        var src: IPPrefix
        var dst: IPPrefix
        var proto: UInt8
        var port: UInt16?
    }

    struct Window {
        var opened: Date
        var last: LoggedPacket
        var repeats: Int
    }

    /// Classifies addresses as `explain` does.
    public var evaluator: Evaluator
    private var windows: [Key: Window] = [:]
    /// Open windows in the order they opened, so that closing them costs only what closes:
    /// a flood of distinct flows must not make each packet scan every open window.
    private var order: [(key: Key, opened: Date)] = []
    private var head = 0
    /// The window a repeat is folded into.
    public let window: TimeInterval

    /// An aggregator for the policy in force.
    public init(policy: Policy, window: TimeInterval = 1) {
        self.evaluator = Evaluator(policy)
        self.window = window
    }

    /// The record for one packet, classified, with the count it stands for.
    public func classify(_ p: LoggedPacket, count: Int = 1) -> FlowRecord {
        let from = evaluator.classify(p.src, isSource: true, hook: p.hook.context)
        let to = evaluator.classify(p.dst, isSource: false, hook: p.hook.context)
        return FlowRecord(packet: p, from: from.description, to: to.description, count: count)
    }

    /// Records due after this packet: windows that closed before it, then the packet itself if
    /// it opens a window.
    public mutating func add(_ p: LoggedPacket) -> [FlowRecord] {
        var out = flush(before: p.time)
        let key = Key(verdict: p.verdict, hook: p.hook, src: p.src, dst: p.dst, proto: p.proto, port: p.port)
        if var w = windows[key] {
            w.repeats += 1
            w.last = p
            windows[key] = w
        } else {
            windows[key] = Window(opened: p.time, last: p, repeats: 0)
            order.append((key, p.time))
            out.append(classify(p))
        }
        return out
    }

    /// Records of the windows that closed by `now` (repeats only; windows without repeats end silently).
    public mutating func flush(before now: Date) -> [FlowRecord] {
        var out: [FlowRecord] = []
        // Kernel timestamps are close to monotonic; a window that opened out of order closes
        // at most one window's length late.
        while head < order.count, now.timeIntervalSince(order[head].opened) >= window {
            let (key, opened) = order[head]
            head += 1
            guard let w = windows[key], w.opened == opened else { continue }
            windows[key] = nil
            if w.repeats > 0 { out.append(classify(w.last, count: w.repeats)) }
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        return out.sorted { $0.packet.time < $1.packet.time }
    }

    /// Every pending repeat, at the end of a stream.
    public mutating func flushAll() -> [FlowRecord] { flush(before: .distantFuture) }
}
