import CNetfilter
import Dispatch
import Glibc
@testable import Netfilter
import Ruleset
import Synchronization
import Testing

/// Reads a subscription on a task of its own, so tests can wait for the next event with a
/// deadline instead of hanging when it never comes.
final class EventRecorder: Sendable {
    private final class Log: Sendable {
        let state = Mutex<(events: [KernelEvent], cursor: Int, error: String?)>(([], 0, nil))
    }
    private let log = Log()
    private let task: Task<Void, Never>

    init(_ events: KernelEvents) {
        let log = self.log
        task = Task {
            do {
                for try await e in events { log.state.withLock { $0.events.append(e) } }
            } catch {
                log.state.withLock { $0.error = "\(error)" }
            }
        }
    }

    deinit { task.cancel() }

    /// The next event not yet returned, waiting up to `timeout`; nil if none came.
    func next(timeout: Duration = .seconds(30)) async -> KernelEvent? {
        let deadline = ContinuousClock.now + timeout
        // One look after the deadline too: a starved test task may wake only after it.
        var last = false
        while !last {
            last = ContinuousClock.now >= deadline
            let e: KernelEvent? = log.state.withLock { s in
                guard s.cursor < s.events.count else { return nil }
                defer { s.cursor += 1 }
                return s.events[s.cursor]
            }
            if let e { return e }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return nil
    }

    /// Events not yet returned, after waiting `quiet` for stragglers.
    func rest(after quiet: Duration = .milliseconds(200)) async -> [KernelEvent] {
        try? await Task.sleep(for: quiet)
        return log.state.withLock { s in
            defer { s.cursor = s.events.count }
            return Array(s.events[s.cursor...])
        }
    }

    var error: String? { log.state.withLock { $0.error } }

    func stop() async {
        task.cancel()
        await task.value
    }
}

/// A namespace (`zw-ev-<random>`) for the duration of `body`, deleted even on failure.
func withEventNamespace<T>(_ body: (String) async throws -> T) async throws -> T {
    let name = "zw-ev-\(UInt32.random(in: 0...UInt32.max))"
    try run(["ip", "netns", "add", name])
    do {
        let result = try await body(name)
        _ = try? run(["ip", "netns", "delete", name])
        return result
    } catch {
        _ = try? run(["ip", "netns", "delete", name])
        throw error
    }
}

let ourPID = UInt32(getpid())

/// The fields of a `.changed`, or a recorded issue.
func changed(_ e: KernelEvent?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation)
    -> (generation: UInt32, pid: UInt32, processName: String?, touchedTable: Bool, onlyElementsOf: Set<String>?)? {
    guard case .changed(let g, let pid, let name, let touched, let elements)? = e else {
        Issue.record("\(what): expected .changed, got \(e.map { "\($0)" } ?? "nothing within 2 s")", sourceLocation: sourceLocation)
        return nil
    }
    return (g, pid, name, touched, elements)
}

/// Change notifications from real nftables, each test in a namespace of its own.
/// `.serialized`: the tests count live reader threads.
@Suite("Kernel events in network namespaces", .serialized)
struct KernelEventsTests {
    @Test(needsRoot) func ourApplyAndForeignChanges() async throws {
        if skipUnlessRoot() { return }
        try await withEventNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let recorder = EventRecorder(try kernel.events())

            // (a) Our own apply: our pid, our table.
            try kernel.apply(Transaction.replace(with: Fixtures.table), expectingGeneration: nil)
            if let c = changed(await recorder.next(), "our apply") {
                #expect(c.pid == ourPID)
                #expect(c.touchedTable)
                #expect(c.generation == (try kernel.generation()))
            }

            // (b) Someone else's table: another pid, not ours.
            let start = ContinuousClock.now
            try nft(ns, ["add", "table", "inet", "other"])
            let event = await recorder.next()
            // (d) From starting `nft` to the event, process start-up included.
            let latency = ContinuousClock.now - start
            if let c = changed(event, "nft add table inet other") {
                #expect(c.pid != ourPID && c.pid != 0)
                #expect(c.processName == "nft")
                #expect(!c.touchedTable)
                #expect(c.generation == (try kernel.generation()))
            }
            #expect(latency < .seconds(10))
            print("event latency from launching nft: \(latency)")

            try nft(ns, ["add", "chain", "inet", "other", "c"])
            #expect(changed(await recorder.next(), "nft add chain inet other c")?.touchedTable == false)
            // Same table name, other family.
            try nft(ns, ["add", "table", "ip", "zonewall"])
            #expect(changed(await recorder.next(), "nft add table ip zonewall")?.touchedTable == false)

            // (c) Changes to our table, however small; element-only ones name their sets.
            try nft(ns, ["delete", "element", "inet", "zonewall", "members_v4", "{ 192.0.2.5 }"])
            let deleted = changed(await recorder.next(), "nft delete element")
            #expect(deleted?.touchedTable == true)
            #expect(deleted?.onlyElementsOf == ["members_v4"])
            try nft(ns, ["add", "element", "inet", "zonewall", "members_v4", "{ 192.0.2.5 }"])
            #expect(changed(await recorder.next(), "nft add element")?.onlyElementsOf == ["members_v4"])
            try nft(ns, ["-f", "-"], input: """
                add element inet zonewall members_v4 { 192.0.2.77 }
                delete element inet zonewall src_v4 { 192.0.2.0/28 }
                """)
            #expect(changed(await recorder.next(), "elements of two sets")?.onlyElementsOf == ["members_v4", "src_v4"])
            try nft(ns, ["add", "rule", "inet", "zonewall", "output", "accept"])
            let rule = changed(await recorder.next(), "nft add rule")
            #expect(rule?.touchedTable == true)
            #expect(rule != nil && rule?.onlyElementsOf == nil)
            try nft(ns, ["-f", "-"], input: """
                add element inet zonewall members_v4 { 192.0.2.78 }
                flush chain inet zonewall output
                """)
            let mixed = changed(await recorder.next(), "an element and a chain flush")
            #expect(mixed?.touchedTable == true)
            #expect(mixed != nil && mixed?.onlyElementsOf == nil)
            try nft(ns, ["delete", "table", "inet", "zonewall"])
            #expect(changed(await recorder.next(), "nft delete table inet zonewall")?.touchedTable == true)

            // Another socket of ours, from whatever thread runs this: still our process.
            let second = try NetlinkKernel(namespace: ns)
            try second.apply(Transaction.replace(with: Fixtures.table), expectingGeneration: nil)
            #expect(changed(await recorder.next(), "apply through a second NetlinkKernel")?.pid == ourPID)
            try nft(ns, ["flush", "ruleset"])
            #expect(changed(await recorder.next(), "nft flush ruleset")?.touchedTable == true)
            // Flushing a ruleset without our table does not concern it.
            try nft(ns, ["add", "table", "inet", "other"])
            #expect(changed(await recorder.next(), "nft add table inet other")?.touchedTable == false)
            try nft(ns, ["flush", "ruleset"])
            #expect(changed(await recorder.next(), "nft flush ruleset without zonewall")?.touchedTable == false)

            // One event per transaction: nothing else arrived.
            #expect(await recorder.rest() == [])
            #expect(recorder.error == nil)
            await recorder.stop()
        }
    }

    /// A check (`nft -c`) and a failed batch commit nothing, so they announce nothing.
    @Test(needsRoot) func uncommittedBatchesAreSilent() async throws {
        if skipUnlessRoot() { return }
        try await withEventNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let recorder = EventRecorder(try kernel.events())
            try kernel.check(Transaction.replace(with: Fixtures.table))
            try nft(ns, ["-c", "add", "table", "inet", "zonewall"])
            let missing = Transaction(family: .inet, table: "zonewall", changes: [.deleteTable])
            #expect(throws: NetfilterError.self) { try kernel.apply(missing, expectingGeneration: nil) }
            #expect(await recorder.rest(after: .milliseconds(300)) == [])
            await recorder.stop()
        }
    }

    /// Events from other namespaces never arrive: the subscription lives in the kernel's.
    @Test(needsRoot) func otherNamespacesAreNotHeard() async throws {
        if skipUnlessRoot() { return }
        try await withEventNamespace { ns in
            try await withEventNamespace { other in
                let recorder = EventRecorder(try NetlinkKernel(namespace: ns).events())
                try nft(other, ["add", "table", "inet", "zonewall"])
                #expect(await recorder.rest(after: .milliseconds(300)) == [])
                try nft(ns, ["add", "table", "inet", "zonewall"])
                #expect(changed(await recorder.next(), "nft in our namespace")?.touchedTable == true)
                await recorder.stop()
            }
        }
    }

    /// A receive buffer too small for a burst: `ENOBUFS` becomes `.overflow`, and the reader
    /// keeps going.
    @Test(needsRoot) func overflowIsReportedAndReadingGoesOn() async throws {
        if skipUnlessRoot() { return }
        try await withEventNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            // The reader waits until the burst is queued, so the socket overflows for sure.
            let burstSent = DispatchSemaphore(value: 0)
            let recorder = EventRecorder(try kernel.events(family: .inet, table: "zonewall", receiveBuffer: 4096,
                                                           beforeReading: { burstSent.wait() }))
            // Thousands of element notifications in one commit.
            var table = Fixtures.table
            let i = table.sets.firstIndex { $0.name == "members_v4" }!
            table.sets[i].elements = ElementList((0..<5000).map { SetElement(key: [ValueRange(Value(0x0A00_0000 + UInt64($0) * 4, width: 4))]) })
            try kernel.apply(Transaction.replace(with: table), expectingGeneration: nil)
            burstSent.signal()
            var sawOverflow = false
            while let e = await recorder.next(timeout: .milliseconds(500)) {
                if e == .overflow { sawOverflow = true }
            }
            #expect(sawOverflow)
            // Still listening.
            try nft(ns, ["add", "table", "inet", "other"])
            if let c = changed(await recorder.next(), "nft after the overflow") {
                #expect(c.pid != ourPID)
                #expect(c.generation == (try kernel.generation()))
            }
            #expect(recorder.error == nil)
            await recorder.stop()
        }
    }

    /// Cancelling, dropping, or cancelling the reading task ends the reader thread and closes
    /// its socket.
    @Test(needsRoot) func subscriptionsStop() async throws {
        if skipUnlessRoot() { return }
        try await withEventNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            let before = NetlinkEventReader.live.load(ordering: .relaxed)
            func waitForReaders(_ n: Int) async -> Bool {
                for _ in 0..<1000 {
                    if NetlinkEventReader.live.load(ordering: .relaxed) == n { return true }
                    try? await Task.sleep(for: .milliseconds(2))
                }
                return false
            }

            // cancel(): queued events are still delivered, then iteration ends.
            let events = try kernel.events()
            #expect(NetlinkEventReader.live.load(ordering: .relaxed) == before + 1)
            try nft(ns, ["add", "table", "inet", "zonewall"])
            try await Task.sleep(for: .milliseconds(200))
            events.cancel()
            var seen: [KernelEvent] = []
            for try await e in events { seen.append(e) }
            #expect(seen.count == 1)
            #expect(await waitForReaders(before))

            // Dropped without ever being read.
            do { _ = try kernel.events() }
            #expect(await waitForReaders(before))

            // The reading task cancelled while it waits.
            let recorder = EventRecorder(try kernel.events())
            #expect(NetlinkEventReader.live.load(ordering: .relaxed) == before + 1)
            await recorder.stop()
            #expect(await waitForReaders(before))
        }
    }
}

/// Resolving the kernel's thread id to a process id: no root needed.
struct CommitterTests {
    @Test func threadsOfOursAreUs() async throws {
        let committer = Committer(ownPortID: 1234)
        func commit(tid: UInt32, port: UInt32 = 0) -> Commit {
            Commit(generation: 1, threadID: tid, processName: nil, portID: port, touchedTable: false)
        }
        #expect(committer.pid(of: commit(tid: 0x7fff_fff0, port: 1234)) == ourPID)
        #expect(committer.pid(of: commit(tid: 0)) == 0)
        #expect(committer.pid(of: commit(tid: 0x7fff_fff0)) == 0x7fff_fff0)  // no such thread
        // A thread that is not the main one.
        let tid = await Task.detached { () -> UInt32 in
            // readlink /proc/thread-self: "PID/task/TID" (Swift does not see gettid).
            var buf = [CChar](repeating: 0, count: 64)
            let n = readlink("/proc/thread-self", &buf, buf.count - 1)
            let link = String(decoding: buf.prefix(max(n, 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return UInt32(link.split(separator: "/").last ?? "") ?? 0
        }.value
        #expect(tid != 0)
        if committer.inInitialPidNamespace {
            #expect(committer.pid(of: commit(tid: tid)) == ourPID)
            #expect(Committer.threadGroup(of: tid) == ourPID)
        } else {
            print("** CommitterTests: not in the initial pid namespace; thread ids are reported as is")
        }
    }
}

/// The decoder alone, on messages built by hand: no root needed.
struct ChangeNotificationDecoderTests {
    func message(_ type: nf_tables_msg_types, family: Family = .inet, _ attrs: (inout NetlinkWriter) -> Void = { _ in }) -> NetlinkMessage {
        var w = NetlinkWriter(capacity: 256)
        let m = w.beginMessage(type: UInt16(NFNL_SUBSYS_NFTABLES) << 8 | type.u16, flags: 0, seq: 0, family: family.rawValue)
        attrs(&w)
        w.endMessage(m)
        return NetlinkMessage.split(w.bytes[...])[0]
    }

    func newgen(_ g: UInt32, pid: UInt32, name: String?) -> NetlinkMessage {
        var m = newgenMessage(g, pid: pid, name: name)
        m.portID = 99
        return m
    }

    func commit(_ g: UInt32, pid: UInt32, name: String?, touched: Bool) -> Commit {
        Commit(generation: g, threadID: pid, processName: name, portID: 99, touchedTable: touched)
    }

    func newgenMessage(_ g: UInt32, pid: UInt32, name: String?) -> NetlinkMessage {
        message(NFT_MSG_NEWGEN, family: Family(rawValue: 0)) {
            $0.put(NFTA_GEN_ID.u16, u32: g)
            $0.put(NFTA_GEN_PROC_PID.u16, u32: pid)
            if let name { $0.put(NFTA_GEN_PROC_NAME.u16, string: name) }
        }
    }

    @Test func batchesEndAtNewgen() {
        var d = ChangeNotificationDecoder(family: .inet, table: "zonewall")
        let ours = message(NFT_MSG_DELSETELEM) { $0.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: "zonewall") }
        let otherFamily = message(NFT_MSG_NEWTABLE, family: .ipv4) { $0.put(NFTA_TABLE_NAME.u16, string: "zonewall") }
        let otherTable = message(NFT_MSG_NEWRULE) { $0.put(NFTA_RULE_TABLE.u16, string: "zonewallx") }

        #expect(d.consume(otherFamily) == nil)
        #expect(d.consume(otherTable) == nil)
        #expect(d.consume(newgen(7, pid: 12, name: "nft")) == commit(7, pid: 12, name: "nft", touched: false))
        #expect(d.consume(ours) == nil)
        #expect(d.consume(otherTable) == nil)
        #expect(d.consume(newgen(8, pid: 0, name: nil)) == commit(8, pid: 0, name: nil, touched: true))
        // Reset after each batch; after lost messages the next batch counts as touching.
        #expect(d.consume(newgen(9, pid: 1, name: "x")) == commit(9, pid: 1, name: "x", touched: false))
        d.lost()
        #expect(d.consume(newgen(10, pid: 1, name: "x")) == commit(10, pid: 1, name: "x", touched: true))
    }

    @Test func elementOnlyBatchesNameTheirSets() {
        var d = ChangeNotificationDecoder(family: .inet, table: "zonewall")
        func element(_ type: nf_tables_msg_types, _ set: String, table: String = "zonewall") -> NetlinkMessage {
            message(type) {
                $0.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: table)
                $0.put(NFTA_SET_ELEM_LIST_SET.u16, string: set)
            }
        }
        let rule = message(NFT_MSG_DELRULE) { $0.put(NFTA_RULE_TABLE.u16, string: "zonewall") }

        for m in [element(NFT_MSG_DELSETELEM, "a"), element(NFT_MSG_NEWSETELEM, "b"), element(NFT_MSG_DELSETELEM, "a"),
                  element(NFT_MSG_NEWSETELEM, "c", table: "other")] {
            #expect(d.consume(m) == nil)
        }
        #expect(d.consume(newgen(5, pid: 3, name: "nft"))?.onlyElementsOf == ["a", "b"])
        // Anything else in the batch, before or after the elements, and the batch is not element-only.
        for batch in [[element(NFT_MSG_NEWSETELEM, "a"), rule], [rule, element(NFT_MSG_NEWSETELEM, "a")]] {
            for m in batch { _ = d.consume(m) }
            let c = d.consume(newgen(6, pid: 3, name: "nft"))
            #expect(c?.touchedTable == true)
            #expect(c != nil && c?.onlyElementsOf == nil)
        }
        // Untouched: nothing to name. Lost messages: anything may have happened.
        #expect(d.consume(newgen(7, pid: 3, name: "nft"))?.onlyElementsOf == nil)
        _ = d.consume(element(NFT_MSG_NEWSETELEM, "a"))
        d.lost()
        let lost = d.consume(newgen(8, pid: 3, name: "nft"))
        #expect(lost?.touchedTable == true)
        #expect(lost != nil && lost?.onlyElementsOf == nil)
    }

    @Test func everyObjectKindNamesItsTable() {
        for type in [NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE,
                     NFT_MSG_NEWSET, NFT_MSG_DELSET, NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM, NFT_MSG_NEWOBJ, NFT_MSG_DELOBJ,
                     NFT_MSG_NEWFLOWTABLE, NFT_MSG_DELFLOWTABLE] {
            var d = ChangeNotificationDecoder(family: .inet, table: "zonewall")
            #expect(d.consume(message(type) { $0.put(1, string: "zonewall") }) == nil)
            #expect(d.consume(newgen(1, pid: 1, name: nil)) == commit(1, pid: 1, name: nil, touched: true), "\(type)")
        }
        for type in [NFT_MSG_GETGEN, NFT_MSG_TRACE, NFT_MSG_GETTABLE] {
            #expect(ChangeNotificationDecoder.tableAttribute(of: type.u16) == nil)
        }
    }
}
