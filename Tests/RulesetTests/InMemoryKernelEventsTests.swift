import Testing
@testable import Ruleset

/// `InMemoryKernel.events` and the `KernelEvents` queue: no root, no kernel.
struct InMemoryKernelEventsTests {
    func table(_ elements: [UInt64]) -> Table {
        let set = NamedSet(name: "s", keyType: [.ipv4Address], flags: .interval,
                           elements: elements.map { SetElement(key: [ValueRange(Value($0, width: 4))]) })
        return Table(family: .inet, name: "zonewall", chains: [Chain(name: "c")], sets: [set])
    }

    /// Everything queued so far: ends the subscription, then reads it to the end.
    func drain(_ events: KernelEvents) async throws -> [KernelEvent] {
        events.cancel()
        var out: [KernelEvent] = []
        for try await e in events { out.append(e) }
        return out
    }

    @Test func commitsAreAnnounced() async throws {
        let kernel = InMemoryKernel(pid: 4242, processName: "zonewall")
        let events = kernel.events()
        let g0 = kernel.generation()

        try kernel.apply(Transaction.replace(with: table([1, 2])), expectingGeneration: g0)
        kernel.tamper(pid: 0, processName: nil) { $0?.sets[0].elements = [] }
        kernel.commitElsewhere()
        kernel.injectOverflow()
        try kernel.apply(Transaction.diff(from: kernel.table, to: table([3])), expectingGeneration: nil)

        #expect(try await drain(events) == [
            .changed(generation: g0 + 1, pid: 4242, processName: "zonewall", touchedTable: true),
            .changed(generation: g0 + 2, pid: 0, processName: nil, touchedTable: true),
            .changed(generation: g0 + 3, pid: InMemoryKernel.foreignPID, processName: "nft", touchedTable: false),
            // The last apply is not reported on its own: it happened before the consumer read
            // the overflow, so the resync that the overflow demands covers it.
            .overflow,
        ])
        #expect(kernel.generation() == g0 + 4)
    }

    @Test func defaultPidIsOurs() async throws {
        let kernel = InMemoryKernel()
        let events = kernel.events()
        try kernel.apply(Transaction.replace(with: table([1])), expectingGeneration: nil)
        guard case .changed(_, let pid, _, _, _)? = try await drain(events).first else {
            Issue.record("no event")
            return
        }
        #expect(pid == kernel.pid)
        #expect(pid != 0 && pid != InMemoryKernel.foreignPID)
    }

    @Test func failedAndEmptyTransactionsAnnounceNothing() async throws {
        let kernel = InMemoryKernel(table: table([1]))
        let events = kernel.events()
        kernel.failNextApply(InMemoryKernel.Failure(errno: 22, operation: "test"))
        #expect(throws: InMemoryKernel.Failure.self) { try kernel.apply(Transaction.replace(with: table([2])), expectingGeneration: nil) }
        #expect(throws: InMemoryKernel.Failure.self) { try kernel.apply(Transaction.replace(with: table([2])), expectingGeneration: 999) }
        try kernel.apply(Transaction.diff(from: table([1]), to: table([1])), expectingGeneration: nil)
        try kernel.check(Transaction.replace(with: table([2])))
        #expect(try await drain(events) == [])
    }

    @Test func otherTablesDoNotTouchOurs() async throws {
        let kernel = InMemoryKernel()
        let ours = kernel.events(), theirs = kernel.events(family: .ipv4, table: "other")
        try kernel.apply(Transaction.replace(with: table([1])), expectingGeneration: nil)
        #expect(try await drain(ours).map(\.touchedTable) == [true])
        #expect(try await drain(theirs).map(\.touchedTable) == [false])
    }

    @Test func aSlowConsumerGetsOneOverflow() async throws {
        let (events, continuation) = KernelEvents.makeEvents(bufferLimit: 4)
        func changed(_ g: UInt32) -> KernelEvent { .changed(generation: g, pid: 1, processName: nil, touchedTable: false) }
        for g in 1...10 { continuation.yield(changed(UInt32(g))) }
        var it = events.makeAsyncIterator()
        // Three fit; the fourth slot holds the overflow that stands for 4...10.
        for g in 1...3 { #expect(try await it.next() == changed(UInt32(g))) }
        continuation.yield(changed(11))  // still covered by the unread overflow: dropped
        #expect(try await it.next() == .overflow)
        // Once the overflow is read, events flow again.
        continuation.yield(changed(12))
        continuation.yield(.overflow)
        continuation.yield(changed(13))  // covered by the overflow before it
        continuation.finish()
        #expect(try await it.next() == changed(12))
        #expect(try await it.next() == .overflow)
        #expect(try await it.next() == nil)
    }

    @Test func terminationReachesTheProducer() async throws {
        let kernel = InMemoryKernel()
        do {
            let events = kernel.events()
            events.cancel()
            _ = events
        }
        do { _ = kernel.events() }  // dropped without being read
        // Cancelling the consuming task stops the subscription too.
        let events = kernel.events()
        let task = Task { for try await _ in events {} }
        task.cancel()
        try await task.value
        #expect(kernel.subscriberCount == 0)
    }
}

extension KernelEvent {
    var touchedTable: Bool? {
        if case .changed(_, _, _, let t, _) = self { return t }
        return nil
    }
}
