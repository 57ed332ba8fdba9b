import CNetfilter
@testable import Netfilter
import Ruleset
import Testing

/// Batches are laid out in libnftnl's batch pages (libmnl's `mnl_nlmsg_batch`), as nft lays
/// them out, and sent as one `sendmsg` with an iovec per page.
@Suite("Batch pages")
struct BatchPagesTests {
    /// A table of 30,000 concatenated-range elements: a batch of several MB.
    static let large: Transaction = {
        let elements = (0..<30_000).map { i -> SetElement in
            let a = UInt64(0xC000_0200) + UInt64(i) * 4
            return SetElement(key: [ValueRange(Value(a, width: 4), Value(a + 1, width: 4)), V.proto(6), V.port(UInt16(i % 60_000) + 1)])
        }
        let set = NamedSet(name: "z_web_v4", keyType: [.ipv4Address, .inetProtocol, .inetService], flags: .interval, elements: elements)
        return Transaction.create(Table(family: .inet, name: "zonewall", chains: [Chain(name: "z_web")], sets: [set]))
    }()

    static func encode(_ tx: Transaction, pageSize: Int) -> EncodedBatch {
        var encoder = BatchEncoder(family: tx.family, table: tx.table, knownSets: [:])
        encoder.pageSize = pageSize
        return encoder.encode(tx, generation: 3, commit: true, firstSeq: 1)
    }

    @Test func aLargeBatchSpansPagesOfWholeMessages() throws {
        let batch = Self.encode(Self.large, pageSize: BatchPages.defaultPageSize)
        #expect(batch.pages.pageCount > 10)
        var messages = 0
        try batch.pages.withIOVecs { (iov) throws(NetfilterError) in
            for page in iov {
                #expect(page.iov_len <= BatchPages.defaultPageSize)
                // Every page ends exactly where its last message ends.
                let bytes = Array(UnsafeRawBufferPointer(start: page.iov_base, count: page.iov_len))
                var i = 0
                while i < bytes.count {
                    let length = Int(readHost(UInt32.self, bytes[...], i))
                    #expect(length >= 16 && length % 4 == 0)
                    i += length
                    messages += 1
                }
                #expect(i == bytes.count)
            }
        }
        #expect(messages == batch.operations.count)
        #expect(batch.bytes.count == batch.byteCount)
        // The same messages, in the same order, as on pages too large to split.
        let whole = Self.encode(Self.large, pageSize: 64 << 20)
        #expect(whole.pages.pageCount == 1)
        #expect(whole.bytes == batch.bytes)
        #expect(whole.offsets == batch.offsets)
        // Each recorded offset starts the message of its operation.
        let joined = batch.bytes
        for (index, offset) in batch.offsets.dropLast().enumerated() {
            let seq = readHost(UInt32.self, joined[...], offset + 8)
            #expect(batch.index(of: seq) == index)
        }
    }

    @Test func pagesGrowSoThatABatchNeverNeedsMoreIOVecsThanSendmsgTakes() {
        #expect(BatchPages().pageSize == BatchPages.defaultPageSize)
        #expect(BatchPages(pageSize: 4096).pageSize == BatchPages.largestMessage)
        let huge = 3 << 30
        let pages = BatchPages(expectedBytes: huge)
        #expect(pages.pageSize * (BatchPages.maximumPages / 2) >= huge)
        var message = [UInt8](repeating: 0, count: 16)
        message[0] = 16
        message.withUnsafeBytes { pages.append($0) }
        #expect(pages.pageCount == 1 && pages.byteCount == 16)
    }
}
