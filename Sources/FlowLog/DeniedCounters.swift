import Foundation

/// Denied and audited packets per (from, to, verdict), with bounded cardinality, and the
/// per-minute history behind "top denied pairs of the last hour". Pure; the daemon exports it.
public struct DeniedCounters: Sendable {
    /// A series' labels.
    public struct Series: Hashable, Sendable, Codable, Comparable {
        /// The source zone, `world`, `host` or `other`.
        public var from: String
        /// The destination zone, `world`, `host` or `other`.
        public var to: String
        /// `denied` or `audit`.
        public var verdict: LogVerdict

        /// A series for these labels.
        public init(from: String, to: String, verdict: LogVerdict) {
            self.from = from
            self.to = to
            self.verdict = verdict
        }

        /// By labels, for stable output.
        public static func < (a: Series, b: Series) -> Bool {
            (a.from, a.to, a.verdict.rawValue) < (b.from, b.to, b.verdict.rawValue)
        }
    }

    /// At most this many series; packets of any further pair count under from="other", to="other".
    public let maxSeries: Int
    /// Packets per series since start: the Prometheus counters.
    public private(set) var totals: [Series: Int] = [:]
    /// Per minute (since 1970) → series → packets, for the last hour.
    private var minutes: [Int: [Series: Int]] = [:]

    /// Empty counters with a series cap.
    public init(maxSeries: Int = 1000) { self.maxSeries = maxSeries }

    /// Counts `count` packets of a record; returns the series they were counted under.
    @discardableResult
    public mutating func add(_ r: FlowRecord) -> Series {
        var s = Series(from: r.from, to: r.to, verdict: r.packet.verdict)
        if totals[s] == nil && totals.count >= maxSeries - LogVerdict.allCases.count {
            // Room is kept for the overflow series themselves, so the cap is never exceeded.
            s = Series(from: "other", to: "other", verdict: s.verdict)
        }
        totals[s, default: 0] += r.count
        let minute = Int(r.packet.time.timeIntervalSince1970 / 60)
        minutes[minute, default: [:]][s, default: 0] += r.count
        if minutes.count > 61 {
            for m in minutes.keys where m < minute - 60 { minutes[m] = nil }
        }
        return s
    }

    /// The pairs with the most packets in the hour before `now`, most first.
    public func top(_ n: Int, hourBefore now: Date) -> [(series: Series, packets: Int)] {
        let nowMinute = Int(now.timeIntervalSince1970 / 60)
        var sum: [Series: Int] = [:]
        for (m, series) in minutes where m > nowMinute - 60 && m <= nowMinute {
            for (s, n) in series { sum[s, default: 0] += n }
        }
        return sum.map { ($0.key, $0.value) }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(n).map { $0 }
    }
}
