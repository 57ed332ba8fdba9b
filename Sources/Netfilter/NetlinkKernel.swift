import CNetfilter
import Glibc
import Ruleset
import Synchronization

/// The real `KernelRuleset`: nftables over one `NETLINK_NETFILTER` socket.
///
/// `apply` sends a transaction as one atomic batch, `check` sends the same batch without
/// committing it (like `nft -c`), and `dump` reads a table back into the model, consistent
/// with one ruleset generation. Calls are serialized on the socket; `dump` reads the sets'
/// elements on a few more sockets of its own in parallel (see `readElements`).
public final class NetlinkKernel: KernelRuleset, @unchecked Sendable {
    /// What `dump` does with a kernel rule zonewall cannot express (one someone else added).
    public enum UndecodableRules: Sendable {
        /// Returns a stand-in rule with no expressions and a comment describing the kernel
        /// rule: it equals no rule zonewall generates, so a reconciler sees drift.
        case markAsDrift
        /// Throws a `NetfilterError` naming the rule.
        case throwError
    }

    /// A socket and its sequence numbers.
    ///
    /// Unchecked `Sendable`: a connection is used by one thread at a time, either the holder
    /// of the kernel's lock or one `readElements` thread, which the lock holder waits for.
    private final class Connection: @unchecked Sendable {
        let socket: NetlinkSocket
        var seq: UInt32
        /// Where the socket was opened (nil: this process's network namespace).
        let namespace: String?
        /// Bytes of the last batch sent (applied or checked).
        var lastBatchBytes = 0
        /// More connections in the same namespace, opened when `readElements` first needs them
        /// and kept for later dumps.
        private var elementReaders: [Connection] = []

        private init(socket: NetlinkSocket, namespace: String?) {
            self.socket = socket
            self.namespace = namespace
            self.seq = UInt32(truncatingIfNeeded: time(nil))
        }

        /// Opens a socket in this process's network namespace, or inside the named one.
        static func open(namespace: String?) throws(NetfilterError) -> Connection {
            let socket = if let namespace { try NetlinkSocket.open(inNamespace: namespace) } else { try NetlinkSocket.open() }
            return Connection(socket: socket, namespace: namespace)
        }

        /// This connection followed by up to `count - 1` others in the same namespace: fewer
        /// if no more can be opened (reading in parallel is only faster, never needed).
        func withElementReaders(count: Int) -> [Connection] {
            while elementReaders.count < count - 1, let c = try? Connection.open(namespace: namespace) {
                elementReaders.append(c)
            }
            return [self] + elementReaders.prefix(max(count - 1, 0))
        }

        /// The sequence number for the next message; `count` numbers are used up.
        func nextSeq(count: Int = 1) -> UInt32 {
            defer { seq &+= UInt32(count) }
            return seq
        }
    }

    private let connection: Mutex<Connection>
    private let undecodable: UndecodableRules
    /// Where the socket was opened, so that `events` listens in the same namespace.
    private let namespace: String?
    /// The port id of the socket batches go out on: notifications name it, so `events`
    /// knows which commits are ours.
    private let portID: UInt32

    /// Opens a netfilter netlink socket in this process's network namespace, or with
    /// `namespace`, inside the named one (`/run/netns/NAME`, as `ip netns add` creates it).
    public init(namespace: String? = nil, undecodableRules: UndecodableRules = .markAsDrift) throws(NetfilterError) {
        let c = try Connection.open(namespace: namespace)
        portID = c.socket.portID
        connection = Mutex(c)
        undecodable = undecodableRules
        self.namespace = namespace
    }

    // MARK: KernelRuleset

    /// Sends the transaction as one batch and commits it; on any error nothing changes.
    /// With `generation`, the batch carries `NFNL_BATCH_GENID` and fails with `ERESTART`
    /// (`NetfilterError.isGenerationMismatch`) if the ruleset moved.
    public func apply(_ transaction: Transaction, expectingGeneration generation: UInt32?) throws(NetfilterError) {
        try send(transaction, generation: generation, commit: true)
    }

    /// Sends the batch without its end message, as `nft -c` does: the kernel validates every
    /// message, reports errors, then aborts.
    public func check(_ transaction: Transaction) throws(NetfilterError) {
        try send(transaction, generation: nil, commit: false)
    }

    /// Reads the table (chains, sets with elements, rules) consistent with one generation:
    /// `NFT_MSG_GETGEN` before and after, retried if a commit happened in between.
    ///
    /// The sets' elements are read on up to `maxElementReaders` sockets at once (one per
    /// usable processor): the kernel's cost of dumping one set grows with the number of sets
    /// in the table, so a table with thousands of sets is read mostly in the kernel.
    public func dump(family: Family, table name: String) throws(NetfilterError) -> KernelSnapshot {
        try connection.withLock { c throws(NetfilterError) in try Self.dump(c, family: family, table: name, undecodable: undecodable) }
    }

    /// `dump` without reading any set's elements.
    public func dumpSkeleton(family: Family, table name: String) throws(NetfilterError) -> KernelSnapshot {
        try connection.withLock { c throws(NetfilterError) in
            try Self.dump(c, family: family, table: name, undecodable: undecodable, elements: false)
        }
    }

    /// Reads the elements of `sets` as they are now, decoded with the given declarations,
    /// without tying the reads to one generation: a dump a commit cuts short is read again.
    /// For sets no transaction in flight touches (`StageVerifier`). Uses up to `readers`
    /// sockets at once.
    public func elements(of sets: [NamedSet], family: Family, table: String, readers: Int) throws(NetfilterError) -> [NamedSet] {
        try connection.withLock { c throws(NetfilterError) in
            try Self.readElements(c, TableDecoder(family: family, strict: undecodable == .throwError), family: family, table: table,
                                  generation: nil, sets: sets.map { ($0.declaration, SetShape($0)) }, readers: readers)
        }
    }

    public func elements(of sets: [NamedSet], family: Family, table: String) throws(NetfilterError) -> [NamedSet] {
        try elements(of: sets, family: family, table: table, readers: Self.maxElementReaders)
    }

    /// Whether the kernel holds each of `elements` (some or all of `set`'s) as `set` has
    /// them: asked for by key (`NFT_MSG_GETSETELEM` without `NLM_F_DUMP`: one reply per
    /// element), not dumped, on up to `readers` sockets at once. Each reply must be the element
    /// asked for, with its flags and data.
    ///
    /// Elements the kernel holds beyond the given ones are not seen: this verifies only sets
    /// nobody else can have written to since they were created, such as a staged build's
    /// (`StageVerifier`: each stage is pinned to the previous one's generation, and the caller
    /// checks the generation once the build is done). Since it needs no whole set, it can
    /// check each stage's elements as soon as that stage is committed.
    ///
    /// Why it exists: the kernel dumps a single-field interval set (an rbtree) in parts of at
    /// most 32 KiB and walks the tree from its first node for every part, so a dump of n
    /// elements costs it n²/k steps; a lookup costs log n (`prefersLookup`).
    public func holds(_ elements: ElementList, of set: NamedSet, family: Family, table: String,
                      readers: Int = 4) throws(NetfilterError) -> Bool {
        try connection.withLock { c throws(NetfilterError) in
            try Self.holds(elements, of: set, c, family: family, table: table, readers: readers,
                           strict: undecodable == .throwError)
        }
    }

    /// Whether `holds` reads `set` back faster than a dump: a single-field interval
    /// set (the kernel's rbtree) of more than a few thousand elements. Below that a dump takes
    /// a few parts and costs less than a reply per element.
    public static func prefersLookup(_ set: NamedSet) -> Bool {
        SetShape(set).usesEndElements && set.elements.count >= lookupThreshold
    }

    /// The element count from which `prefersLookup` holds.
    static let lookupThreshold = 4096

    /// The flags of a table a daemon owns: `owner`, plus `persist` on Linux 6.9 and later
    /// (earlier kernels refuse the flag), so the table outlives the daemon's socket.
    public static var ownedTableFlags: TableFlags {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        let persist = parts.count == 2 && (parts[0], parts[1]) >= (6, 9)
        return persist ? [.owner, .persist] : [.owner]
    }

    /// Processors this process may run on (its affinity mask), at least 1.
    public static var usableProcessors: Int { usableProcessorCount }

    /// Bytes of the last batch this object sent to the kernel: what a change cost on the wire.
    public var lastBatchBytes: Int { connection.withLock { $0.lastBatchBytes } }

    /// The current ruleset generation (`NFT_MSG_GETGEN`).
    public func generation() throws(NetfilterError) -> UInt32 {
        try connection.withLock { c throws(NetfilterError) in try Self.generation(c) }
    }

    /// Subscribes to the namespace's nftables notifications (`NFNLGRP_NFTABLES`) on a socket
    /// and thread of their own: one `.changed` per commit, anyone's (ours included, with our
    /// pid), `.overflow` when the socket dropped some (`ENOBUFS`). The pid is the committing
    /// process's (see `Committer`): batches sent by this object always carry `getpid()`.
    ///
    /// Commits after this returns are reported; the subscription outlives this object.
    public func events(family: Family, table: String) throws(NetfilterError) -> KernelEvents {
        try events(family: family, table: table, receiveBuffer: 32 << 20)
    }

    /// `events`, with the socket's receive buffer chosen and something to run before reading
    /// (tests shrink the one and stall the other to provoke `ENOBUFS`).
    func events(family: Family, table: String, receiveBuffer: Int,
                beforeReading: (@Sendable () -> Void)? = nil) throws(NetfilterError) -> KernelEvents {
        let socket = if let namespace { try NetlinkSocket.open(inNamespace: namespace) } else { try NetlinkSocket.open() }
        return try NetlinkEventReader.start(socket, family: family, table: table, ownPortID: portID,
                                            receiveBuffer: receiveBuffer, beforeReading: beforeReading)
    }

    // MARK: Extras

    /// How set elements are encoded and decoded: by the hand-written fast path unless
    /// `ZONEWALL_ELEMENT_PATH=libnftnl` selects libnftnl's objects. The fast path is the default
    /// because a cold apply at 10,000 zones takes 1.3× the user time with libnftnl's, enough to
    /// miss the user ≤ 0.2× sys target (`scripts/bench apply` measures both, README "Netlink");
    /// the two write the same bytes and read the same elements (`ElementPathTests`). Everything
    /// else is libnftnl's.
    static let elementPath: BatchEncoder.ElementPath = {
        guard let name = getenv("ZONEWALL_ELEMENT_PATH") else { return .direct }
        return BatchEncoder.ElementPath(rawValue: String(cString: name)) ?? .direct
    }()

    /// Encodes `transaction` as a batch with the named element path (`libnftnl` or `direct`)
    /// and returns its size in bytes: a pure function, for `zonewall-lab encode`'s benchmark.
    public static func encodedBatchBytes(of transaction: Transaction, elementPath: String) -> Int? {
        guard let path = BatchEncoder.ElementPath(rawValue: elementPath) else { return nil }
        var encoder = BatchEncoder(family: transaction.family, table: transaction.table, knownSets: transaction.setDeclarations)
        encoder.elementPath = path
        return encoder.encode(transaction, generation: nil, commit: true, firstSeq: 0).byteCount
    }

    /// The bytes `apply` would send for `transaction`: the whole batch, headers included.
    public func batchSize(of transaction: Transaction) throws(NetfilterError) -> Int {
        try connection.withLock { c throws(NetfilterError) in
            try Self.encode(c, transaction, generation: nil, commit: true).byteCount
        }
    }

    /// The bytes of `transaction` as a batch, given the declarations of any sets it edits
    /// without declaring: a pure function, for benchmarks and tests.
    public static func batchSize(of transaction: Transaction, knownSets: [NamedSet] = []) -> Int {
        let known = Dictionary(knownSets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return BatchEncoder(family: transaction.family, table: transaction.table, knownSets: known)
            .encode(transaction, generation: nil, commit: true, firstSeq: 0).byteCount
    }

    /// Every attribute of every set of a table as the kernel reports it, but the handle:
    /// lets tests compare what zonewall and nft store, user data included.
    func rawSetAttributes(family: Family, table: String) throws(NetfilterError) -> [String: [UInt16: [UInt8]]] {
        try connection.withLock { c throws(NetfilterError) in
            let msgs = try Self.request(c, NFT_MSG_GETSET, family: family, dump: true) { $0.put(NFTA_SET_TABLE.u16, string: table) }
            var out: [String: [UInt16: [UInt8]]] = [:]
            for m in msgs {
                guard let name = m.attributes[NFTA_SET_NAME.u16]?.string else { continue }
                for a in m.attributes where a.type != NFTA_SET_HANDLE.u16 { out[name, default: [:]][a.type] = Array(a.payload) }
            }
            return out
        }
    }

    // MARK: Batches

    private func send(_ tx: Transaction, generation: UInt32?, commit: Bool) throws(NetfilterError) {
        try connection.withLock { c throws(NetfilterError) in
            let batch = try Self.encode(c, tx, generation: generation, commit: commit)
            c.lastBatchBytes = batch.byteCount
            try Self.exchange(c, batch)
        }
    }

    private static func encode(_ c: Connection, _ tx: Transaction, generation: UInt32?, commit: Bool) throws(NetfilterError) -> EncodedBatch {
        // Element changes to sets the transaction does not declare need the kernel's declaration.
        var declared = Set<String>()
        var needsKernelSets = false
        for change in tx.changes {
            switch change {
            case .addSet(let s): declared.insert(s.name)
            case .deleteTable: declared = []
            case .addElements(let n, _), .deleteElements(let n, _):
                needsKernelSets = needsKernelSets || (!declared.contains(n) && tx.setDeclarations[n] == nil)
            default: break
            }
        }
        var known = tx.setDeclarations
        if needsKernelSets {
            for (set, _) in try sets(c, family: tx.family, table: tx.table) { known[set.name] = set }
        }
        var encoder = BatchEncoder(family: tx.family, table: tx.table, knownSets: known)
        encoder.elementPath = Self.elementPath
        let batch = encoder.encode(tx, generation: generation, commit: commit, firstSeq: c.seq)
        _ = c.nextSeq(count: batch.operations.count)
        return batch
    }

    /// Sends the batch in one `sendmsg` and reads every ack; throws the first error in batch order.
    private static func exchange(_ c: Connection, _ batch: EncodedBatch) throws(NetfilterError) {
        // Each queued ack costs about 1 KiB of receive buffer (skb overhead included).
        c.socket.ensureBuffers(send: batch.byteCount + (64 << 10), receive: max(4 << 20, batch.operations.count * 1536))
        try c.socket.send(batch.pages, what: "batch of \(batch.operations.count) messages")

        var acked = 0
        var errors: [(index: Int, ack: NetlinkAck)] = []
        var waited = false
        // The kernel handles the batch inside sendmsg, so every reply is already queued;
        // a short wait covers anything unusual before declaring replies missing.
        while true {
            guard let datagram = try c.socket.receive(wait: false) else {
                if errors.isEmpty && acked < batch.acknowledgedCount && !waited {
                    waited = true
                    usleep(100_000)
                    continue
                }
                break
            }
            let result = MessageLoop.run(datagram[...], seq: 0, portID: c.socket.portID, onData: { _ in }) { ack in
                if let i = batch.index(of: ack.seq) {
                    if ack.errno == 0 { acked += 1 } else { errors.append((i, ack)) }
                }
                return true  // read every ack of the batch
            }
            if case .failed(let e) = result {
                throw NetfilterError(operation: "reading the acks of a batch of \(batch.operations.count) messages", errno: e)
            }
        }
        if let first = errors.min(by: { $0.index < $1.index }) {
            throw NetfilterError(operation: describe(batch, index: first.index, ack: first.ack),
                                 errno: first.ack.errno, detail: first.ack.message)
        }
        guard acked == batch.acknowledgedCount else {
            throw NetfilterError(operation: "reading acks for \(batch.acknowledgedCount) messages (got \(acked))", errno: EPROTO)
        }
    }

    /// Names the object a failed message was about, e.g. `adding element 192.0.2.0/28 to map src_v4`.
    static func describe(_ batch: EncodedBatch, index: Int, ack: NetlinkAck) -> String {
        let t = "\(batch.family) \(batch.table)"
        switch batch.operations[index] {
        case .begin(let g):
            if ack.errno == ERESTART, let g { return "committing at generation \(g)" }
            return "committing the transaction on table \(t)"
        case .end: return "ending the batch"
        case .addTable: return "adding table \(t)"
        case .deleteTable: return "deleting table \(t)"
        case .addSet(let s): return "adding \(s.isMap ? "map" : "set") \(s.name)"
        case .addChain(let name): return "adding chain \(name)"
        case .addRule(let chain, let n, let rule): return "adding rule \(n) to chain \(chain) (\(NftText.render(rule)))"
        case .elements(let chunk):
            let kind = chunk.shape.dataType == nil ? "set" : "map"
            let verb = chunk.adding ? "adding" : "deleting"
            let prep = chunk.adding ? "to" : "from"
            if let offset = ack.attributeOffset,
               let element = element(at: offset, in: batch, index: index, chunk: chunk) {
                let decl = NamedSet(name: chunk.set, keyType: chunk.shape.keyType, dataType: chunk.shape.dataType)
                let key = SetElement(key: element.key)
                return "\(verb) element \(NftText.render(key, of: decl)) \(prep) \(kind) \(chunk.set)"
            }
            return "\(verb) \(chunk.parts.count) kernel elements \(prep) \(kind) \(chunk.set)"
        }
    }

    /// The model element whose kernel element the extended ack's attribute offset points into.
    private static func element(at offset: Int, in batch: EncodedBatch, index: Int, chunk: ElementChunk) -> SetElement? {
        let start = batch.offsets[index]
        let bytes = batch.bytes[...]
        let len = Int(readHost(UInt32.self, bytes, start))
        let message = NetlinkMessage.split(bytes[start..<(start + len)]).first
        guard let list = message?.attributes[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested else { return nil }
        let target = start + offset
        var j = 0
        for elem in list {
            if target >= elem.offset && target < elem.payload.endIndex { break }
            j += 1
        }
        var result: SetElement?
        var k = 0
        SetElementCodec.forEachPart(of: chunk.elements, shape: chunk.shape, adding: chunk.adding, firstSegment: chunk.firstSegment) { part in
            if k == chunk.parts.lowerBound + j { result = part.element }
            k += 1
        }
        return result
    }

    // MARK: Requests

    /// Sends one request and returns its reply messages (all parts of a dump).
    /// Throws the kernel's error, and `EINTR` if a dump was interrupted by a ruleset change.
    ///
    /// An interrupted dump is still read to its end, so the socket can start the next dump
    /// (the kernel refuses a dump on a socket whose last one is unfinished).
    private static func request(_ c: Connection, _ msg: nf_tables_msg_types, family: Family, dump: Bool,
                                _ attrs: (inout NetlinkWriter) -> Void) throws(NetfilterError) -> [NetlinkMessage] {
        try request(c, msg, family: family, dump: dump) { w, _ in attrs(&w) }
    }

    /// `request`, with the offset of the message being written passed to `attrs` (for libnftnl
    /// objects that append themselves to it).
    private static func request(_ c: Connection, _ msg: nf_tables_msg_types, family: Family, dump: Bool,
                                capacity: Int = 256,
                                _ attrs: (inout NetlinkWriter, _ message: Int) -> Void) throws(NetfilterError) -> [NetlinkMessage] {
        var w = NetlinkWriter(capacity: capacity)
        let seq = c.nextSeq()
        let flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK)
        let m = w.beginMessage(type: UInt16(NFNL_SUBSYS_NFTABLES) << 8 | msg.u16, flags: UInt16(flags), seq: seq, family: family.rawValue)
        attrs(&w, m)
        w.endMessage(m)
        try c.socket.send(w.bytes, what: "request")
        var replies: [NetlinkMessage] = []
        var interrupted = false
        while true {
            guard let datagram = try c.socket.receive(wait: true) else { continue }
            if interrupted {
                // libmnl reports an interrupted dump as EINTR at each message: read to the end.
                if NetlinkMessage.split(datagram[...]).contains(where: { $0.seq == seq && $0.type == UInt16(NLMSG_DONE) }) {
                    throw NetfilterError(operation: "dumping", errno: EINTR)
                }
                continue
            }
            var failure: NetlinkAck?
            let result = MessageLoop.run(datagram[...], seq: seq, portID: c.socket.portID, onData: { replies.append($0) }) { ack in
                if ack.errno != 0 { failure = ack }
                return false  // the ack ends the request
            }
            switch result {
            case .more: continue
            case .done: return replies
            case .failed(EINTR) where failure == nil:
                interrupted = true
                if !dump { throw NetfilterError(operation: "request", errno: EINTR) }
                if NetlinkMessage.split(datagram[...]).contains(where: { $0.seq == seq && $0.type == UInt16(NLMSG_DONE) }) {
                    throw NetfilterError(operation: "dumping", errno: EINTR)
                }
            case .failed(let e):
                throw NetfilterError(operation: "request", errno: failure?.errno ?? e, detail: failure?.message)
            }
        }
    }

    private static func generation(_ c: Connection) throws(NetfilterError) -> UInt32 {
        do throws(NetfilterError) {
            let replies = try request(c, NFT_MSG_GETGEN, family: Family(rawValue: UInt8(AF_UNSPEC)), dump: false) { _ in }
            guard let id = replies.first?.attributes[NFTA_GEN_ID.u16]?.u32 else {
                throw NetfilterError(operation: "reading the ruleset generation", errno: EPROTO)
            }
            return id
        } catch {
            throw NetfilterError(operation: "reading the ruleset generation", errno: error.errno, detail: error.detail)
        }
    }

    private static func sets(_ c: Connection, family: Family, table: String) throws(NetfilterError) -> [(NamedSet, SetShape)] {
        let decoder = TableDecoder(family: family, strict: false)
        return try request(c, NFT_MSG_GETSET, family: family, dump: true) { $0.put(NFTA_SET_TABLE.u16, string: table) }
            .compactMap { decoder.set($0, table: table) }
    }

    // MARK: Dump

    private static func dump(_ c: Connection, family: Family, table name: String,
                             undecodable: UndecodableRules, elements: Bool = true) throws(NetfilterError) -> KernelSnapshot {
        let decoder = TableDecoder(family: family, strict: undecodable == .throwError)
        var lastError = NetfilterError(operation: "dumping table \(family) \(name)", errno: EAGAIN)
        for _ in 0..<16 {
            let before = try generation(c)
            do {
                let table = try readTable(c, decoder, family: family, name: name, generation: before, elements: elements)
                // Consistent only if nothing committed while we read.
                if try generation(c) == before { return KernelSnapshot(table: table, generation: before) }
            } catch where error.errno == EINTR || error.errno == ENOENT {
                lastError = error  // something changed under us: read again
            }
        }
        throw NetfilterError(operation: "dumping table \(family) \(name) while the ruleset kept changing",
                             errno: lastError.errno, detail: lastError.detail)
    }

    /// Names the table in the error of one of `readTable`'s dumps.
    private static func failure(dumping what: String, family: Family, table: String, _ e: NetfilterError) -> NetfilterError {
        NetfilterError(operation: "dumping \(what) of table \(family) \(table)", errno: e.errno, detail: e.detail)
    }

    /// The messages of a dump, if each was built at `generation`: nftables puts the low 16
    /// bits of the generation a dump message was built at in its `res_id`. Throws `EINTR`
    /// (the dump must be retried) otherwise.
    private static func consistent(_ ms: [NetlinkMessage], generation: UInt32) throws(NetfilterError) -> [NetlinkMessage] {
        if ms.contains(where: { $0.resourceID != UInt16(truncatingIfNeeded: generation) }) {
            throw NetfilterError(operation: "dumping", errno: EINTR)
        }
        return ms
    }

    private static func readTable(_ c: Connection, _ decoder: TableDecoder, family: Family, name: String,
                                  generation: UInt32, elements: Bool) throws(NetfilterError) -> Table? {
        func fail(_ what: String, _ e: NetfilterError) -> NetfilterError {
            failure(dumping: what, family: family, table: name, e)
        }
        let tableMsgs: [NetlinkMessage]
        do {
            tableMsgs = try request(c, NFT_MSG_GETTABLE, family: family, dump: false) { $0.put(NFTA_TABLE_NAME.u16, string: name) }
        } catch where error.errno == ENOENT {
            return nil
        }
        var table = Table(family: family, name: name)
        // The table's own attributes: a dormant table, say, is drift like any other.
        guard let attributes = tableMsgs.lazy.compactMap({ decoder.tableAttributes($0, table: name) }).first else {
            throw NetfilterError(operation: "reading table \(family) \(name)", errno: EPROTO, detail: "the kernel's reply names no such table")
        }
        (table.flags, table.userData) = attributes
        do {
            let chainMsgs = try consistent(request(c, NFT_MSG_GETCHAIN, family: family, dump: true) { $0.put(NFTA_CHAIN_TABLE.u16, string: name) },
                                           generation: generation)
            table.chains = chainMsgs.compactMap { decoder.chain($0, table: name) }
        } catch where error.errno != EINTR { throw fail("chains", error) }

        var declarations: [(NamedSet, SetShape)]
        do {
            declarations = try sets(c, family: family, table: name)
        } catch where error.errno != EINTR { throw fail("sets", error) }

        table.sets = elements ? try readElements(c, decoder, family: family, table: name, generation: generation, sets: declarations)
                              : declarations.map(\.0)

        do {
            table.objects = try objects(c, family: family, table: name, generation: generation)
        } catch where error.errno != EINTR { throw fail("objects and flowtables", error) }

        let ruleMsgs: [NetlinkMessage]
        do {
            ruleMsgs = try consistent(request(c, NFT_MSG_GETRULE, family: family, dump: true) { $0.put(NFTA_RULE_TABLE.u16, string: name) },
                                      generation: generation)
        } catch where error.errno != EINTR { throw fail("rules", error) }
        var index: [String: Int] = [:]
        for (i, ch) in table.chains.enumerated() { index[ch.name] = i }
        for m in ruleMsgs {
            guard let (chain, rule) = try decoder.rule(m, table: name), let i = index[chain] else { continue }
            table.chains[i].rules.append(rule)
        }
        return table
    }

    /// The table's stateful objects and flowtables (`NFT_MSG_GETOBJ`, `NFT_MSG_GETFLOWTABLE`,
    /// dumps filtered by table). zonewall declares none, so only their kinds and names are
    /// read, from the attributes: whatever else they hold, each one is drift.
    private static func objects(_ c: Connection, family: Family, table: String, generation: UInt32) throws(NetfilterError) -> [TableObject] {
        var found: [TableObject] = []
        let objectMsgs = try consistent(request(c, NFT_MSG_GETOBJ, family: family, dump: true) { $0.put(NFTA_OBJ_TABLE.u16, string: table) },
                                        generation: generation)
        for m in objectMsgs {
            let a = m.attributes
            guard a[NFTA_OBJ_TABLE.u16]?.string == table, let name = a[NFTA_OBJ_NAME.u16]?.string else { continue }
            found.append(TableObject(kind: objectKind(a[NFTA_OBJ_TYPE.u16]?.u32 ?? 0), name: name))
        }
        let flowtableMsgs = try consistent(request(c, NFT_MSG_GETFLOWTABLE, family: family, dump: true) {
            $0.put(NFTA_FLOWTABLE_TABLE.u16, string: table)
        }, generation: generation)
        for m in flowtableMsgs {
            let a = m.attributes
            guard a[NFTA_FLOWTABLE_TABLE.u16]?.string == table, let name = a[NFTA_FLOWTABLE_NAME.u16]?.string else { continue }
            found.append(TableObject(kind: "flowtable", name: name))
        }
        return found
    }

    /// nft's word for a stateful object's type (`NFT_OBJECT_*`).
    static func objectKind(_ type: UInt32) -> String {
        switch Int32(truncatingIfNeeded: type) {
        case NFT_OBJECT_COUNTER: "counter"
        case NFT_OBJECT_QUOTA: "quota"
        case NFT_OBJECT_CT_HELPER: "ct helper"
        case NFT_OBJECT_LIMIT: "limit"
        case NFT_OBJECT_CONNLIMIT: "connlimit"
        case NFT_OBJECT_TUNNEL: "tunnel"
        case NFT_OBJECT_CT_TIMEOUT: "ct timeout"
        case NFT_OBJECT_SECMARK: "secmark"
        case NFT_OBJECT_CT_EXPECT: "ct expectation"
        case NFT_OBJECT_SYNPROXY: "synproxy"
        default: "object of type \(type)"
        }
    }

    // MARK: Set elements

    /// `holds`: the elements' kernel elements in requests of as many as the element list's
    /// 16-bit length allows, and no more than each socket's receive buffer holds replies for
    /// (each reply is a datagram of its own, and one that finds the buffer full is dropped),
    /// spread over up to `readers` sockets.
    ///
    /// One kind of element is not asked for: the end of a range that the next range starts
    /// right after (`a-b` then `b+1-c`). The kernel cannot find it by key: at equal keys its
    /// rbtree lookup turns toward the start element. It decides nothing either: from `b+1` on,
    /// the next range's start is the closest element below any key.
    private static func holds(_ elements: ElementList, of set: NamedSet, _ c: Connection, family: Family, table: String,
                              readers maxReaders: Int, strict: Bool) throws(NetfilterError) -> Bool {
        let shape = SetShape(set)
        let decoder = TableDecoder(family: family, strict: strict)
        let lookup: any ElementLookup = (decoder.elementPath == .direct ? RawElementLookup(elements, of: set, shape: shape) : nil)
            ?? ModelElementLookup(elements, of: set, shape: shape, decoder: decoder)
        let count = lookup.count
        guard count > 0 else { return true }
        // An element asked for takes at most its nest, a key and a key end, each in a nest, and flags.
        let perMessage = BatchEncoder.elementBytesPerMessage / (40 + 2 * shape.keyLength)
        let wanted = min(maxReaders, usableProcessorCount, (count + perMessage - 1) / perMessage)
        let connections = wanted > 1 ? c.withElementReaders(count: wanted) : [c]
        for k in connections { k.socket.ensureBuffers(send: 0, receive: lookupReceiveBuffer) }
        let buffer = connections.map { $0.socket.kernelReceiveBufferSize }.min() ?? 0
        let perRequest = max(16, min(perMessage, buffer / lookupReplyTruesize))
        let chunks = stride(from: 0, to: count, by: perRequest).map { $0 ..< min($0 + perRequest, count) }

        @Sendable func ask(_ range: Range<Int>, on c: Connection) throws(NetfilterError) -> Bool {
            let capacity = 256 + range.count * (96 + 2 * shape.keyLength)
            let replies: [NetlinkMessage]
            do throws(NetfilterError) {
                replies = try request(c, NFT_MSG_GETSETELEM, family: family, dump: false, capacity: capacity) { w, m in
                    w.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: table)
                    w.put(NFTA_SET_ELEM_LIST_SET.u16, string: set.name)
                    let nest = w.beginNest(NFTA_SET_ELEM_LIST_ELEMENTS.u16)
                    lookup.write(range, toMessageAt: m, &w)
                    w.endNest(nest)
                }
            } catch where error.errno == ENOENT {
                return false  // the kernel stops at the first element it does not hold, or finds no such set
            } catch {
                throw failure(dumping: "elements of set \(set.name)", family: family, table: table, error)
            }
            let messageType = UInt16(NFNL_SUBSYS_NFTABLES) << 8 | NFT_MSG_NEWSETELEM.u16
            return lookup.matches(range, replies.filter { $0.type == messageType })
        }

        guard connections.count > 1 else {
            for r in chunks where try !ask(r, on: c) { return false }
            return true
        }
        struct Outcome { var differs = false; var error: NetfilterError? }
        let next = Atomic<Int>(0)
        let outcome = Mutex(Outcome())
        runConcurrently(connections.count) { k in
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < chunks.count, outcome.withLock({ !$0.differs && $0.error == nil }) else { return }
                do throws(NetfilterError) {
                    if try !ask(chunks[i], on: connections[k]) { outcome.withLock { $0.differs = true } }
                } catch {
                    outcome.withLock { if $0.error == nil { $0.error = error } }
                }
            }
        }
        return try outcome.withLock { o throws(NetfilterError) in
            if let error = o.error { throw error }
            return !o.differs
        }
    }

    /// The receive buffer `holds` asks for, and what it assumes each reply takes of
    /// it: the kernel allocates every reply with `NLMSG_GOODSIZE` (a page), and counts the
    /// page and the socket buffer around it (about 4.5 KiB); 8 KiB leaves room to spare.
    static let lookupReceiveBuffer = 32 << 20
    static let lookupReplyTruesize = 8 << 10

    /// The most sockets `dump` reads set elements on at once.
    static let maxElementReaders = 4

    /// Reads and decodes the elements of each set of `declarations`, which come back in the
    /// same order, every dump message checked against `generation` (`consistent`).
    ///
    /// Dumping one set costs the kernel time in proportion to the number of sets in the table
    /// (it finds the set by name, and again for each part of the dump, walking the table's
    /// list of sets), so reading all sets costs in proportion to their number squared. The
    /// sets are therefore handed out one at a time (`ElementReads.claim`) to up to
    /// `maxElementReaders` connections, `c` and more in its namespace, one per usable
    /// processor, each reading and decoding on a thread of its own. The kernel dumps under
    /// RCU and shares no lock between sockets, so the dumps really run in parallel.
    ///
    /// Errors are as when reading the sets one after another: `EINTR` and `ENOENT` (the
    /// ruleset changed: `dump` reads again) as they are, any other naming the set. No set is
    /// started after a failure; of several failed sets, the first in `declarations` is reported.
    private static func readElements(_ c: Connection, _ decoder: TableDecoder, family: Family, table name: String,
                                     generation: UInt32?, sets declarations: [(NamedSet, SetShape)],
                                     readers maxReaders: Int = maxElementReaders) throws(NetfilterError) -> [NamedSet] {
        @Sendable func read(_ i: Int, on c: Connection) throws(NetfilterError) -> NamedSet {
            let (set, shape) = declarations[i]
            var attempt = 0
            while true {
                var collector = ElementCollector(shape: shape)
                var keyless = 0
                do throws(NetfilterError) {
                    var msgs = try request(c, NFT_MSG_GETSETELEM, family: family, dump: true) {
                        $0.put(NFTA_SET_ELEM_LIST_TABLE.u16, string: name)
                        $0.put(NFTA_SET_ELEM_LIST_SET.u16, string: set.name)
                    }
                    if let generation {
                        msgs = try consistent(msgs, generation: generation)
                    } else if let first = msgs.first, msgs.contains(where: { $0.resourceID != first.resourceID }) {
                        // The kernel does not flag a set dump that a commit cut in two
                        // (NLM_F_DUMP_INTR); each part names the generation it was built at.
                        throw NetfilterError(operation: "dumping", errno: EINTR)
                    }
                    for m in msgs { keyless += collector.add(elementsOf: m, decoder) }
                } catch where error.errno == EINTR && generation == nil && attempt < 16 {
                    attempt += 1  // a commit happened while the set was read: read it again
                    continue
                } catch where generation == nil || (error.errno != EINTR && error.errno != ENOENT) {
                    throw failure(dumping: "elements of set \(set.name)", family: family, table: name, error)
                }
                if keyless > 0 {
                    // A catch-all element (nft's `*`), which zonewall never writes.
                    guard generation != nil else {
                        throw NetfilterError(operation: "reading elements of set \(set.name) of table \(family) \(name)", errno: EPROTO,
                                             detail: "it holds \(keyless) element(s) without a key (a catch-all), which zonewall does not write")
                    }
                    // In a full dump the set is then not zonewall's: it differs from every desired set.
                    return NamedSet(name: set.name, keyType: [.unknownWidth], dataType: set.dataType, flags: set.flags)
                }
                var s = set
                s.elements = collector.finish()
                return s
            }
        }

        let readers = min(maxReaders, usableProcessorCount, declarations.count)
        guard readers > 1 else {  // no thread for one processor or one set
            return try declarations.indices.map { i throws(NetfilterError) in try read(i, on: c) }
        }
        let connections = c.withElementReaders(count: readers)
        let reads = ElementReads(count: declarations.count)
        runConcurrently(connections.count) { k in
            while let i = reads.claim() {
                do throws(NetfilterError) {
                    reads.finish(i, try read(i, on: connections[k]))
                } catch {
                    reads.fail(i, error)
                }
            }
        }
        return try reads.result()
    }

    /// The sets `readElements` has still to read and those it has read, shared by its threads.
    private final class ElementReads: Sendable {
        private struct Results {
            var sets: [NamedSet?]
            var failure: (index: Int, error: NetfilterError)?
        }
        private let count: Int
        private let next = Atomic<Int>(0)
        private let results: Mutex<Results>

        init(count: Int) {
            self.count = count
            results = Mutex(Results(sets: Array(repeating: nil, count: count)))
        }

        /// The index of the next set to read; nil when every set is taken or one failed.
        ///
        /// Sets are handed out last first. The kernel's cost of a set grows with its place in
        /// the table's list, so the costliest go first and the cheap ones even out the end
        /// (and zonewall declares its largest maps last: the rules that use them come after).
        func claim() -> Int? {
            let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
            return k < count ? count - 1 - k : nil
        }

        func finish(_ i: Int, _ set: NamedSet) {
            results.withLock { $0.sets[i] = set }
        }

        /// Records the failure (the first set's, when several fail) and stops the claims.
        func fail(_ i: Int, _ error: NetfilterError) {
            results.withLock { r in
                if r.failure.map({ i < $0.index }) ?? true { r.failure = (i, error) }
            }
            next.store(count, ordering: .relaxed)
        }

        /// The sets in order, or the failure; call once every reader has returned.
        func result() throws(NetfilterError) -> [NamedSet] {
            try results.withLock { r throws(NetfilterError) in
                if let failure = r.failure { throw failure.error }
                return r.sets.map { $0! }
            }
        }
    }
}
