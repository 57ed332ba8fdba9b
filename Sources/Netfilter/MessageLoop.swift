import CNetfilter
import Glibc

// libmnl's side of reading: walking a datagram's messages (`mnl_nlmsg_ok`/`mnl_nlmsg_next`),
// running them through callbacks (`mnl_cb_run2`), which checks port id and sequence
// numbers and turns `NLMSG_DONE`, `NLMSG_ERROR` and `NLM_F_DUMP_INTR` into results, and
// reading an ack's extended attributes (`mnl_attr_parse`).

extension NetlinkMessage {
    /// The message `nlh` points at, as a slice of `datagram`, whose bytes start at `base`.
    fileprivate init(_ nlh: UnsafePointer<nlmsghdr>, base: UnsafeRawPointer, datagram: ArraySlice<UInt8>) {
        let start = datagram.startIndex + (UnsafeRawPointer(nlh) - base)
        let h = nlh.pointee
        self.init(type: h.nlmsg_type, flags: h.nlmsg_flags, seq: h.nlmsg_seq, portID: h.nlmsg_pid,
                  payload: datagram[(start + 16)..<(start + Int(h.nlmsg_len))])
    }

    /// Splits a datagram into its messages (`mnl_nlmsg_ok` / `mnl_nlmsg_next`); stops at a
    /// truncated one.
    static func split(_ datagram: ArraySlice<UInt8>) -> [NetlinkMessage] {
        datagram.withUnsafeBytes { raw -> [NetlinkMessage] in
            guard let base = raw.baseAddress else { return [] }
            var out: [NetlinkMessage] = []
            var length = Int32(clamping: raw.count)
            var nlh: UnsafePointer<nlmsghdr>? = base.assumingMemoryBound(to: nlmsghdr.self)
            // libmnl compares `nlmsg_len` as a signed int: a length of 2 GiB or more passes
            // `mnl_nlmsg_ok`, so the length is also checked against what is left.
            while let h = nlh, mnl_nlmsg_ok(h, length), Int(h.pointee.nlmsg_len) <= Int(length) {
                out.append(NetlinkMessage(h, base: base, datagram: datagram))
                nlh = UnsafePointer(mnl_nlmsg_next(h, &length))
            }
            return out
        }
    }
}

extension NetlinkAck {
    /// The ack `nlh` (an `NLMSG_ERROR`) carries: its `nlmsgerr`, then the extended ack's
    /// attributes, read with `mnl_attr_parse`.
    init?(_ nlh: UnsafePointer<nlmsghdr>) {
        let h = nlh.pointee
        let headerSize = MemoryLayout<nlmsghdr>.size
        guard h.nlmsg_type == UInt16(NLMSG_ERROR), Int(h.nlmsg_len) >= headerSize + MemoryLayout<nlmsgerr>.size else { return nil }
        let err = mnl_nlmsg_get_payload(nlh).assumingMemoryBound(to: nlmsgerr.self).pointee
        errno = -err.error
        seq = err.msg.nlmsg_seq
        message = nil
        attributeOffset = nil
        guard h.nlmsg_flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return }
        // With NETLINK_CAP_ACK only the original header is echoed; otherwise the whole message.
        let echoed = h.nlmsg_flags & UInt16(NLM_F_CAPPED) != 0 ? headerSize : (Int(err.msg.nlmsg_len) + 3) & ~3
        let offset = MemoryLayout<Int32>.size + echoed
        guard offset <= Int(h.nlmsg_len) - headerSize else { return }
        var found = ExtendedAck()
        _ = withUnsafeMutablePointer(to: &found) { p in
            mnl_attr_parse(nlh, UInt32(offset), { attr, data in
                guard let attr, let data else { return MNL_CB_ERROR }
                let found = data.assumingMemoryBound(to: ExtendedAck.self)
                switch UInt32(mnl_attr_get_type(attr)) {
                case NLMSGERR_ATTR_MSG.rawValue where mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0:
                    found.pointee.message = String(cString: mnl_attr_get_str(attr))
                case NLMSGERR_ATTR_OFFS.rawValue where mnl_attr_validate(attr, MNL_TYPE_U32) == 0:
                    found.pointee.offset = Int(mnl_attr_get_u32(attr))
                default: break
                }
                return MNL_CB_OK
            }, p)
        }
        message = found.message
        attributeOffset = found.offset
    }

    private struct ExtendedAck {
        var message: String?
        var offset: Int?
    }
}

/// What `MessageLoop.run` made of a datagram.
enum LoopResult: Equatable {
    /// Every message was handled; more are expected (a dump's next part, more acks).
    case more
    /// `NLMSG_DONE`, or the ack that ends a request.
    case done
    /// The kernel answered with an error, or (`EINTR`) marked the dump interrupted.
    case failed(errno: Int32)
}

/// Runs one received datagram through libmnl's message loop, `mnl_cb_run2`.
///
/// Data messages go to `onData`; acks and errors (`NLMSG_ERROR`) to `onAck`, which returns
/// whether the loop goes on (a batch reads every ack, a request stops at its own). `seq` 0
/// accepts any sequence number; `portID` is the socket's, so a message meant for another
/// socket is an error (`ESRCH`), as is one with an unexpected sequence number (`EPROTO`).
enum MessageLoop {
    static func run(_ datagram: ArraySlice<UInt8>, seq: UInt32, portID: UInt32,
                    onData: (NetlinkMessage) -> Void, onAck: (NetlinkAck) -> Bool) -> LoopResult {
        datagram.withUnsafeBytes { raw -> LoopResult in
            guard let base = raw.baseAddress else { return .more }
            // mnl_cb_run2 walks with mnl_nlmsg_ok, which takes a length of 2 GiB or more as valid.
            var length = raw.count, at = 0
            while length >= 16 {
                let len = Int(raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))
                guard len >= 16, len <= length else { return .failed(errno: EPROTO) }
                let step = min((len + 3) & ~3, length)
                at += step
                length -= step
            }
            return withoutActuallyEscaping(onData) { onData in
                withoutActuallyEscaping(onAck) { onAck in
                    let context = Context(base: base, datagram: datagram, onData: onData, onAck: onAck)
                    let opaque = Unmanaged.passUnretained(context).toOpaque()
                    var control = [mnl_cb_t?](repeating: nil, count: Int(NLMSG_MIN_TYPE))
                    control[Int(NLMSG_ERROR)] = { nlh, data in
                        guard let nlh, let data else { return MNL_CB_ERROR }
                        let c = Unmanaged<Context>.fromOpaque(data).takeUnretainedValue()
                        guard let ack = NetlinkAck(nlh) else { errno = EPROTO; return MNL_CB_ERROR }
                        if c.onAck(ack) { return MNL_CB_OK }
                        c.ended = true
                        if ack.errno != 0 { c.error = ack.errno; return MNL_CB_ERROR }
                        return MNL_CB_STOP
                    }
                    control[Int(NLMSG_DONE)] = { _, data in
                        guard let data else { return MNL_CB_ERROR }
                        Unmanaged<Context>.fromOpaque(data).takeUnretainedValue().ended = true
                        return MNL_CB_STOP
                    }
                    let rc = control.withUnsafeMutableBufferPointer { ctl in
                        mnl_cb_run2(base, raw.count, seq, portID, { nlh, data in
                            guard let nlh, let data else { return MNL_CB_ERROR }
                            let c = Unmanaged<Context>.fromOpaque(data).takeUnretainedValue()
                            c.onData(NetlinkMessage(nlh, base: c.base, datagram: c.datagram))
                            return MNL_CB_OK
                        }, opaque, ctl.baseAddress, UInt32(ctl.count))
                    }
                    let savedErrno = errno
                    return withExtendedLifetime(context) {
                        if rc == MNL_CB_ERROR { return .failed(errno: context.error ?? savedErrno) }
                        return context.ended ? .done : .more
                    }
                }
            }
        }
    }

    private final class Context {
        let base: UnsafeRawPointer
        let datagram: ArraySlice<UInt8>
        let onData: (NetlinkMessage) -> Void
        let onAck: (NetlinkAck) -> Bool
        var ended = false
        var error: Int32?

        init(base: UnsafeRawPointer, datagram: ArraySlice<UInt8>, onData: @escaping (NetlinkMessage) -> Void,
             onAck: @escaping (NetlinkAck) -> Bool) {
            self.base = base
            self.datagram = datagram
            self.onData = onData
            self.onAck = onAck
        }
    }
}
