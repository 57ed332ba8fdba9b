import Foundation
import Testing
import ZonePolicy
@testable import FlowLog

/// Classification, repeat counting, the JSON line format, and the bounded counters.
struct FlowRecordTests {
    static let policy: Policy = {
        let yaml = """
            zones:
              legacy: {members: [192.0.2.0/24], audit: true}
              db: {members: [203.0.113.5]}
              web: {members: [198.51.100.0/24]}
            allow:
              - {from: web, to: db, ports: [tcp/5432]}

            """
        return PolicyLoader.parse([PolicyFile(path: "p.yaml", contents: yaml)]).policy!
    }()

    static func packet(_ src: String, _ dst: String, port: UInt16, proto: UInt8 = 6, verdict: LogVerdict = .denied,
                       hook: LogHook = .forward, at t: TimeInterval) -> LoggedPacket {
        LoggedPacket(time: Date(timeIntervalSince1970: 1_790_000_000 + t), verdict: verdict, hook: hook,
                     src: IPPrefix.parse(src)!, dst: IPPrefix.parse(dst)!, proto: proto, port: port)
    }

    @Test func classifiesAsExplainDoes() {
        let a = FlowAggregator(policy: Self.policy)
        let r = a.classify(Self.packet("192.0.2.9", "203.0.113.5", port: 22, verdict: .audit, at: 0))
        #expect(r.from == "legacy" && r.to == "db")
        let w = a.classify(Self.packet("10.9.9.9", "198.51.100.4", port: 80, at: 0))
        #expect(w.from == "world" && w.to == "web")
        let h = a.classify(Self.packet("198.51.100.4", "10.9.9.9", port: 22, hook: .input, at: 0))
        #expect(h.to == "host")
    }

    @Test func repeatsWithinASecondBecomeOneCount() {
        var a = FlowAggregator(policy: Self.policy)
        var out: [FlowRecord] = []
        out += a.add(Self.packet("198.51.100.4", "203.0.113.5", port: 22, at: 0))       // first: at once
        out += a.add(Self.packet("198.51.100.4", "203.0.113.5", port: 22, at: 0.2))
        out += a.add(Self.packet("198.51.100.4", "203.0.113.5", port: 22, at: 0.9))
        out += a.add(Self.packet("198.51.100.4", "203.0.113.5", port: 23, at: 0.95))    // another flow
        #expect(out.map(\.count) == [1, 1])
        out += a.add(Self.packet("198.51.100.4", "203.0.113.5", port: 22, at: 1.5))     // closes the first window
        #expect(out.map(\.count) == [1, 1, 2, 1])
        #expect(out[2].packet.port == 22 && out[3].packet.port == 22)
        out += a.flushAll()
        #expect(out.map(\.count).reduce(0, +) == 5)
    }

    @Test func jsonLineHasExactlyTheKeysAndRoundTrips() throws {
        let r = FlowAggregator(policy: Self.policy).classify(Self.packet("192.0.2.9", "203.0.113.5", port: 22, verdict: .audit, at: 0.25))
        let line = r.jsonLine
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["time", "verdict", "hook", "src", "dst", "proto", "port", "from", "to", "count"])
        #expect(object["time"] as? String == "2026-09-21T14:13:20.250Z")
        #expect(object["proto"] as? String == "tcp" && object["port"] as? Int == 22 && object["verdict"] as? String == "audit")
        let back = try JSONDecoder().decode(FlowRecord.self, from: Data(line.utf8))
        #expect(back == r)
        // A packet with no port still has the key.
        var gre = r
        gre.packet.proto = 47
        gre.packet.port = nil
        #expect(gre.jsonLine.contains("\"port\":null"))
    }

    @Test func timesFormatAndParseByHand() throws {
        for t in [0, 951_782_400.5, 1_790_000_000.25, 4_102_444_799.999, 1_709_164_800.007] as [Double] {
            let d = Date(timeIntervalSince1970: t)
            let text = FlowTime.format(d)
            #expect(text == ISO8601DateFormatter.string(from: d, timeZone: TimeZone(identifier: "UTC")!,
                                                          formatOptions: [.withInternetDateTime, .withFractionalSeconds]))
            #expect(abs(try FlowTime.parse(text).timeIntervalSince1970 - (t * 1000).rounded(.down) / 1000) < 1e-6, "\(text)")
        }
        #expect(try FlowTime.parse("2026-11-30T06:40:01Z").timeIntervalSince1970 == 1_796_020_801)
        #expect(try FlowTime.parse("2026-11-30T07:40:01+01:00").timeIntervalSince1970 == 1_796_020_801)
        #expect(throws: (any Error).self) { try FlowTime.parse("2026-13-30T06:40:01Z") }
        #expect(throws: (any Error).self) { try FlowTime.parse("yesterday") }
    }

    @Test func countersAreBoundedAndRankTheLastHour() {
        var c = DeniedCounters(maxSeries: 10)
        let a = FlowAggregator(policy: Self.policy)
        for i in 0..<50 {
            var r = a.classify(Self.packet("198.51.100.4", "203.0.113.5", port: 22, at: Double(i)))
            r.from = "zone\(i)"
            r.count = i + 1
            c.add(r)
        }
        #expect(c.totals.count <= 10)
        #expect(c.totals.values.reduce(0, +) == (1...50).reduce(0, +))
        #expect(c.totals[.init(from: "other", to: "other", verdict: .denied)] != nil)
        let top = c.top(3, hourBefore: Date(timeIntervalSince1970: 1_790_000_100))
        #expect(top.first?.series.from == "other")
        #expect(c.top(3, hourBefore: Date(timeIntervalSince1970: 1_790_000_000 + 7200)).isEmpty)
    }

    /// Counts below 1 and ports out of range are named as such, not as malformed JSON.
    @Test func countAndPortAreCheckedWithTheirKeyNamed() throws {
        let good = #"{"count":3,"dst":"203.0.113.5","from":"web","hook":"forward","port":22,"proto":"tcp","src":"198.51.100.4","time":"2026-11-30T07:01:02.345Z","to":"db","verdict":"denied"}"#
        #expect(try JSONDecoder().decode(FlowRecord.self, from: Data(good.utf8)).count == 3)
        let cases: [(String, String, String)] = [
            (#""count":3"#, #""count":-5"#, "'count' must be a packet count of at least 1, found -5"),
            (#""count":3"#, #""count":0"#, "'count' must be a packet count of at least 1, found 0"),
            (#""count":3"#, #""count":1.5"#, "'count' must be a packet count of at least 1, found 1.5"),
            (#""count":3"#, #""count":"3""#, "'count' must be a packet count of at least 1, found the string \"3\""),
            (#""port":22"#, #""port":70000"#, "'port' must be a port, 0-65535, found 70000"),
            (#""port":22"#, #""port":-1"#, "'port' must be a port, 0-65535, found -1"),
            (#""port":22,"proto":"tcp""#, #""port":300,"proto":"icmp""#, "'port' must be an ICMP type, 0-255, found 300"),
        ]
        for (from, to, message) in cases {
            let line = good.replacingOccurrences(of: from, with: to)
            #expect(throws: (any Error).self, "\(to)") { try JSONDecoder().decode(FlowRecord.self, from: Data(line.utf8)) }
            do {
                _ = try JSONDecoder().decode(FlowRecord.self, from: Data(line.utf8))
            } catch DecodingError.dataCorrupted(let c) {
                #expect(c.debugDescription == message, "\(to)")
            } catch {
                Issue.record("\(to): \(error)")
            }
        }
        // No port (an unnamed protocol) and a null one are both absent.
        let none = good.replacingOccurrences(of: #""port":22,"#, with: "")
        #expect(try JSONDecoder().decode(FlowRecord.self, from: Data(none.utf8)).packet.port == nil)
        let null = good.replacingOccurrences(of: #""port":22"#, with: #""port":null"#)
        #expect(try JSONDecoder().decode(FlowRecord.self, from: Data(null.utf8)).packet.port == nil)
    }
}
