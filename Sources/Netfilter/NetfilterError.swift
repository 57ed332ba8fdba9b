import Glibc

/// A failure talking to the kernel's nftables, naming what was being done and why it failed.
///
/// `description` reads like `adding element 192.0.2.0/28 to map src_v4: EEXIST (File exists)`.
public struct NetfilterError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was being done: `adding rule 3 to chain forward (ip saddr vmap @src_v4)`.
    public var operation: String
    /// The errno the kernel or a system call returned; 0 when the failure is not an errno
    /// (for example a kernel object that zonewall cannot decode).
    public var errno: Int32
    /// Extra detail: the kernel's extended-ack message, or what could not be decoded.
    public var detail: String?

    /// An error for `operation` with `errno` (0 when it is not a system error).
    public init(operation: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// True when the kernel refused the batch because the ruleset generation moved (`ERESTART`).
    public var isGenerationMismatch: Bool { errno == ERESTART }

    /// The symbolic errno name, e.g. `EEXIST`.
    public var errnoName: String { Self.name(of: errno) }

    /// `operation: ENAME (strerror) [detail]`.
    public var description: String {
        var s = operation
        if errno != 0 { s += ": \(errnoName) (\(String(cString: strerror(errno))))" }
        if let detail { s += errno != 0 ? " [\(detail)]" : ": \(detail)" }
        return s
    }

    /// The failure of a system call, with the current `errno`.
    static func system(_ operation: String) -> NetfilterError {
        NetfilterError(operation: operation, errno: Glibc.errno)
    }

    /// Names of the errnos nftables returns in practice.
    static func name(of code: Int32) -> String {
        switch code {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case E2BIG: "E2BIG"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EFAULT: "EFAULT"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case ENODEV: "ENODEV"
        case EINVAL: "EINVAL"
        case ENFILE: "ENFILE"
        case EMFILE: "EMFILE"
        case ENOSPC: "ENOSPC"
        case ERANGE: "ERANGE"
        case EDEADLK: "EDEADLK"
        case ENAMETOOLONG: "ENAMETOOLONG"
        case ENOTEMPTY: "ENOTEMPTY"
        case ELOOP: "ELOOP"
        case ENODATA: "ENODATA"
        case EPROTO: "EPROTO"
        case EMSGSIZE: "EMSGSIZE"
        case EOVERFLOW: "EOVERFLOW"
        case ERESTART: "ERESTART"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case EAFNOSUPPORT: "EAFNOSUPPORT"
        case ENOBUFS: "ENOBUFS"
        case ETIMEDOUT: "ETIMEDOUT"
        case ECANCELED: "ECANCELED"
        default: "errno \(code)"
        }
    }
}
