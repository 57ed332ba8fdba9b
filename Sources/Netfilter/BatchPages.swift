import CNetfilter
import Glibc

/// A batch laid out as nft lays it out: libnftnl's `nftnl_batch`, a list of libmnl batch pages
/// (`mnl_nlmsg_batch`), each holding whole messages. `nftnl_batch_update` moves a message that
/// overflows its page to a new page. The pages go to the kernel in one `sendmsg`, one iovec per
/// page (`NetlinkSocket.send(_:what:)`): the kernel takes a batch only within one `sendmsg`.
///
/// Owns its `nftnl_batch` and frees it once, in `deinit`. Filled by `BatchEncoder`, then only
/// read, so it can be shared between threads.
final class BatchPages: @unchecked Sendable {
    /// nft's `BATCH_PAGE_SIZE`: 32 memory pages.
    static let defaultPageSize = 32 * 4096
    /// The room a page keeps beyond its size for the message that overflows it: the largest
    /// message zonewall writes (element messages are split below 64 KiB), as nft's
    /// `NFT_NLMSG_MAXSIZE`.
    static let largestMessage = Int(UInt16.max) + 4096
    /// `sendmsg` takes at most this many iovecs (`IOV_MAX`).
    static let maximumPages = 1024

    private let pointer: OpaquePointer
    /// The size of each page: at least `largestMessage`.
    let pageSize: Int
    /// Bytes of all messages appended so far.
    private(set) var byteCount = 0

    /// Empty pages of `pageSize` bytes; `expectedBytes` (an estimate of the whole batch) makes
    /// the pages larger where the default would need more than `maximumPages / 2` of them.
    init(pageSize: Int = BatchPages.defaultPageSize, expectedBytes: Int = 0) {
        // A page must hold the largest message: libmnl cannot move a message larger than a page.
        let size = max(pageSize, Self.largestMessage, (expectedBytes / (Self.maximumPages / 2) + 4095) & ~4095)
        guard let p = nftnl_batch_alloc(UInt32(size), UInt32(Self.largestMessage)) else {
            fatalError("nftnl_batch_alloc: out of memory")
        }
        pointer = p
        self.pageSize = size
    }

    deinit { nftnl_batch_free(pointer) }

    /// Copies the whole messages in `messages` to the pages, each with `nftnl_batch_update`.
    func append(_ messages: UnsafeRawBufferPointer) {
        var i = 0
        while i < messages.count {
            let length = Int(messages.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            // libmnl advances a page by `nlmsg_len`, so every message must end on 4 bytes, as
            // libmnl's and NetlinkWriter's attributes do.
            precondition(length >= 16 && length % 4 == 0 && i + length <= messages.count && length <= Self.largestMessage,
                         "not a whole netlink message of at most \(Self.largestMessage) bytes")
            nftnl_batch_buffer(pointer).copyMemory(from: messages.baseAddress! + i, byteCount: length)
            guard nftnl_batch_update(pointer) == 0 else { fatalError("nftnl_batch_update: out of memory") }
            i += length
        }
        byteCount += messages.count
    }

    /// The pages as iovecs (`nftnl_batch_iovec`), valid while `self` lives.
    func withIOVecs<R>(_ body: (UnsafeBufferPointer<iovec>) throws(NetfilterError) -> R) throws(NetfilterError) -> R {
        let count = Int(nftnl_batch_iovec_len(pointer))
        var iov = [iovec](repeating: iovec(), count: max(count, 1))
        iov.withUnsafeMutableBufferPointer { nftnl_batch_iovec(pointer, $0.baseAddress, UInt32(count)) }
        return try iov.withUnsafeBufferPointer { (buffer) throws(NetfilterError) -> R in
            try body(UnsafeBufferPointer(rebasing: buffer.prefix(count)))
        }
    }

    /// The pages one after another: the bytes the kernel receives.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(byteCount)
        try? withIOVecs { (iov) throws(NetfilterError) in
            for v in iov { out += UnsafeRawBufferPointer(start: v.iov_base, count: v.iov_len) }
        }
        return out
    }

    /// How many pages hold messages.
    var pageCount: Int { Int(nftnl_batch_iovec_len(pointer)) }
}
