import CNetfilter
import Foundation
import Glibc
@testable import Netfilter
import Ruleset
import Testing

/// The decoders' fuzzing entry points: real kernel bytes decode to the table the kernel holds,
/// and damaged bytes give a typed error or a value, never a trap. Setting
/// `ZONEWALL_FUZZ_SEEDS=DIR` writes the kernel captures as seeds (DIR/table-dump, DIR/notifications).
@Suite("Decoder fuzzing entry points")
struct FuzzEntryPointsTests {
    /// The messages of the batch that creates `table`, without batch begin and end: the
    /// NEW* objects a dump returns, in the same format.
    ///
    /// Two batches: the skeleton, then the elements, which a dump names by set name (in one
    /// batch they would name their new set by batch id).
    static func creationMessages(_ table: Table = Fixtures.table) -> (bytes: [UInt8], boundaries: Set<Int>) {
        var skeleton = table
        for i in skeleton.sets.indices { skeleton.sets[i].elements = ElementList() }
        let known = Dictionary(uniqueKeysWithValues: skeleton.sets.map { ($0.name, $0) })
        var bytes: [UInt8] = []
        var boundaries: Set<Int> = []
        for (tx, knownSets) in [(Transaction.diff(from: nil, to: skeleton), [:]),
                                (Transaction.elementChanges(from: skeleton.sets, to: table.sets, family: table.family, table: table.name), known)] {
            let batch = BatchEncoder(family: table.family, table: table.name, knownSets: knownSets)
                .encode(tx, generation: nil, commit: true, firstSeq: 1)
            let start = batch.offsets[1], end = batch.offsets[batch.offsets.count - 1]
            boundaries.formUnion(batch.offsets[1...].map { $0 - start + bytes.count })
            bytes += batch.bytes[start..<end]
        }
        return (dumpForm(bytes), boundaries)
    }

    static func writeSeed(_ bytes: [UInt8], _ target: String, _ name: String) {
        guard let dir = ProcessInfo.processInfo.environment["ZONEWALL_FUZZ_SEEDS"] else { return }
        try? FileManager.default.createDirectory(atPath: "\(dir)/\(target)", withIntermediateDirectories: true)
        let path = "\(dir)/\(target)/\(name)"
        if !FileManager.default.createFile(atPath: path, contents: Data(bytes)) { Issue.record("cannot write the seed \(path)") }
    }

    @Test func batchObjectsDecodeToTheTable() throws {
        let (bytes, _) = Self.creationMessages()
        Self.writeSeed(bytes, "table-dump", "fixtures-batch")
        let table = try #require(try decodeTableDump(bytes))
        #expect(table.isEquivalent(to: Fixtures.table))
    }

    @Test func everyTruncationIsATypedErrorAtItsMessage() throws {
        let (bytes, boundaries) = Self.creationMessages()
        for cut in stride(from: 1, to: bytes.count, by: 7) {
            let prefix = Array(bytes[..<cut])
            if boundaries.contains(cut) {
                _ = try decodeTableDump(prefix)  // whole messages: decodes (possibly to a partial table)
            } else {
                #expect(throws: (any Error).self, "cut at \(cut)") { try decodeTableDump(prefix) }
            }
        }
    }

    /// Each byte of the first messages overwritten with values that break lengths and types:
    /// any outcome but a trap is acceptable.
    @Test func corruptedBytesNeverTrap() {
        let (bytes, _) = Self.creationMessages()
        var outcomes = (decoded: 0, refused: 0)
        for i in stride(from: 0, to: min(bytes.count, 2400), by: 5) {
            for v: UInt8 in [0x00, 0x03, 0x7f, 0xff] {
                var damaged = bytes
                damaged[i] = v
                if (try? decodeTableDump(damaged)) != nil { outcomes.decoded += 1 } else { outcomes.refused += 1 }
                _ = try? decodeChangeNotifications(damaged)
            }
        }
        #expect(outcomes.decoded > 0 && outcomes.refused > 0)
    }

    @Test func malformedInputsAreRefusedWithWhatFailed() throws {
        #expect(try decodeTableDump([]) == nil)
        #expect(try decodeChangeNotifications([]) == [])
        #expect(throws: (any Error).self) { try decodeTableDump([1, 2, 3]) }
        #expect(throws: (any Error).self) { try decodeChangeNotifications([16, 0, 0, 0, 0, 0]) }
        // A netlink error (NLMSG_ERROR, errno -EPERM) is not a dump.
        var error: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        error += [UInt8](repeating: 0, count: 16)
        #expect(throws: (any Error).self) { try decodeTableDump(error) }
        // A length that runs past the end of the input.
        var long = Self.creationMessages().bytes
        long[0] = 0xff; long[1] = 0xff
        #expect(throws: (any Error).self) { try decodeTableDump(long) }
        do {
            _ = try decodeTableDump(long)
        } catch {
            #expect("\(error)".contains("byte 0"), "\(error)")
        }
    }

    /// What the kernel really sends: a dump of the table, request by request, on a raw socket.
    @Test func kernelDumpBytesDecodeToWhatTheKernelHolds() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let kernel = try NetlinkKernel(namespace: ns)
            try kernel.apply(Transaction.replace(with: Fixtures.table), expectingGeneration: nil)
            let socket = try NetlinkSocket.open(inNamespace: ns)
            var bytes: [UInt8] = []
            var seq: UInt32 = 100
            func dump(_ msg: nf_tables_msg_types, dump: Bool = true, _ attrs: (inout NetlinkWriter) -> Void) throws {
                seq += 1
                var w = NetlinkWriter()
                let m = w.beginMessage(type: UInt16(NFNL_SUBSYS_NFTABLES) << 8 | msg.u16,
                                       flags: UInt16(NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK)), seq: seq, family: Family.inet.rawValue)
                attrs(&w)
                w.endMessage(m)
                try socket.send(w.bytes, what: "dump request")
                while true {
                    let datagram = try #require(try socket.receive(wait: true))
                    var done = false
                    var i = 0
                    for m in NetlinkMessage.split(datagram[...]) {
                        let length = 16 + m.payload.count
                        defer { i += (length + 3) & ~3 }
                        guard m.seq == seq else { continue }
                        if m.type == UInt16(NLMSG_DONE) || m.type == UInt16(NLMSG_ERROR) { done = true; continue }
                        bytes += datagram[i..<(i + length)]
                        bytes += [UInt8](repeating: 0, count: ((length + 3) & ~3) - length)
                    }
                    if done || !dump && !bytes.isEmpty { break }
                }
            }
            try dump(NFT_MSG_GETTABLE, dump: false) { $0.put(NFTA_TABLE_NAME.u16, string: "zonewall") }
            try dump(NFT_MSG_GETCHAIN) { $0.put(NFTA_CHAIN_TABLE.u16, string: "zonewall") }
            try dump(NFT_MSG_GETSET) { $0.put(NFTA_SET_TABLE.u16, string: "zonewall") }
            for set in Fixtures.table.sets {
                try dump(NFT_MSG_GETSETELEM) {
                    $0.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: "zonewall")
                    $0.put(NFTA_SET_ELEM_LIST_SET.u16, string: set.name)
                }
            }
            try dump(NFT_MSG_GETRULE) { $0.put(NFTA_RULE_TABLE.u16, string: "zonewall") }
            Self.writeSeed(bytes, "table-dump", "kernel-dump-fixtures")
            let decoded = try #require(try decodeTableDump(bytes))
            let dumped = try #require(try kernel.dump(family: .inet, table: "zonewall").table)
            #expect(decoded.isEquivalent(to: dumped))
            #expect(decoded.isEquivalent(to: Fixtures.table))
        }
    }

    /// What a subscriber really receives for one commit: its objects, then NFT_MSG_NEWGEN.
    @Test func kernelNotificationBytesDecodeToOneCommit() throws {
        if skipUnlessRoot() { return }
        try withNamespace { ns in
            let listener = try NetlinkSocket.open(inNamespace: ns)
            try listener.addMembership(UInt32(NFNLGRP_NFTABLES.rawValue), what: "nftables notifications")
            let kernel = try NetlinkKernel(namespace: ns)
            try kernel.apply(Transaction.replace(with: Fixtures.table), expectingGeneration: nil)
            let generation = try kernel.generation()
            var bytes: [UInt8] = []
            while true {
                let datagram = try #require(try listener.receive(wait: true))
                bytes += datagram
                if NetlinkMessage.split(datagram[...]).contains(where: { $0.type & 0xff == NFT_MSG_NEWGEN.u16 }) { break }
            }
            Self.writeSeed(bytes, "notifications", "kernel-commit-fixtures")
            let events = try decodeChangeNotifications(bytes)
            #expect(events.count == 1)
            guard case .changed(let gen, let pid, _, let touched, let onlyElements) = events.first else {
                Issue.record("no commit in \(events)")
                return
            }
            #expect(gen == generation && touched && onlyElements == nil)
            #expect(pid != 0)
        }
    }
}
