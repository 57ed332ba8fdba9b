import CNetworkNamespace
import Glibc

/// A network namespace, by the name `ip netns add` gives it (`/run/netns/NAME`) or by path.
///
/// A Linux thread's network namespace is its own: `setns` moves only the calling thread, and a
/// socket stays in the namespace it was created in. So a module that talks to the kernel of
/// another namespace (`--netns`) opens its socket on a throwaway thread that enters the
/// namespace and ends (`run`), and no thread that runs other code ever changes namespace. A
/// thread of its own that lives in the namespace (a listener's) calls `enter`.
public struct NetworkNamespace: Sendable, Hashable, CustomStringConvertible {
    /// The namespace file.
    public let path: String

    /// `name` as `ip netns` names it, or a path (anything with a `/`, e.g. `/proc/PID/ns/net`).
    public init(_ name: String) {
        path = name.contains("/") ? name : "/run/netns/\(name)"
    }

    public var description: String { path }

    /// The namespace's cookie (`SO_NETNS_COOKIE`): unique since boot and never reused, where
    /// the nsfs inode number is (a namespace deleted and created again often gets the same one).
    /// Nil when it cannot be read (the namespace cannot be entered without privileges).
    public static func cookie(of namespace: String?) -> UInt64? {
        func read() -> UInt64? {
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var cookie: UInt64 = 0
            var length = socklen_t(MemoryLayout<UInt64>.size)
            let soNetnsCookie: Int32 = 71  // linux/socket.h, since 5.14
            guard getsockopt(fd, SOL_SOCKET, soNetnsCookie, &cookie, &length) == 0 else { return nil }
            return cookie
        }
        guard let namespace else { return read() }
        return (try? NetworkNamespace(namespace).run(read).get()) ?? nil
    }

    /// The nsfs file of a namespace: a name, a path, or nil for this process's own namespace.
    public static func file(of namespace: String?) -> String {
        namespace.map { NetworkNamespace($0).path } ?? "/proc/self/ns/net"
    }

    /// The namespace itself, `DEV-INODE` of its nsfs file (`file(of:)`), whatever it is called.
    /// Nil when it cannot be examined.
    public static func identity(of namespace: String?) -> String? {
        var st = stat()
        guard stat(file(of: namespace), &st) == 0 else { return nil }
        return "\(st.st_dev)-\(st.st_ino)"
    }

    /// Why the namespace could not be entered: the step that failed, and its errno.
    public struct EntryError: Error, Sendable, Equatable, CustomStringConvertible {
        public let operation: String
        public let errno: Int32

        public init(operation: String, errno: Int32) {
            self.operation = operation
            self.errno = errno
        }

        public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
    }

    /// Moves the calling thread into the namespace, for good: only for a thread of its own.
    public func enter() throws(EntryError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            let why = e == ENOENT ? " (no such namespace: `ip netns list` shows the names there are)" : ""
            throw EntryError(operation: "opening network namespace \(path)\(why)", errno: e)
        }
        defer { close(fd) }
        guard zw_enter_network_namespace(fd) == 0 else {
            let e = errno
            // setns refuses a file that is no namespace before it checks privileges.
            let why = e == EINVAL ? " (\(path) is not a network namespace: name one that `ip netns list` shows, "
                + "or give a path such as /proc/PID/ns/net)" : ""
            throw EntryError(operation: "entering network namespace \(path)\(why)", errno: e)
        }
    }

    /// `body`'s result, computed on a throwaway thread inside the namespace; the calling thread
    /// waits for it and stays where it is. `body` runs only if the namespace was entered.
    public func run<R>(_ body: () -> R) -> Result<R, EntryError> {
        withoutActuallyEscaping(body) { body in
            let job = NamespaceJob(namespace: self, body: body)
            defer { job.body = nil }  // `body` must not outlive this call
            let context = Unmanaged<ThreadJob>.passRetained(job).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { context in
                Unmanaged<ThreadJob>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
            guard rc == 0 else {
                Unmanaged<ThreadJob>.fromOpaque(context).release()
                return .failure(EntryError(operation: "starting a thread to enter network namespace \(path)", errno: rc))
            }
            pthread_join(thread, nil)
            return job.result!
        }
    }
}

/// What a thread started by `run` does; a class without generics, for the C thread entry.
/// Handed to exactly one thread, and read only after that thread is joined.
private class ThreadJob: @unchecked Sendable {
    func run() {}
}

private final class NamespaceJob<R>: ThreadJob, @unchecked Sendable {
    let namespace: NetworkNamespace
    var body: (() -> R)?
    var result: Result<R, NetworkNamespace.EntryError>?

    init(namespace: NetworkNamespace, body: @escaping () -> R) {
        self.namespace = namespace
        self.body = body
    }

    override func run() {
        result = Result { () throws(NetworkNamespace.EntryError) -> R in
            try namespace.enter()
            return body!()
        }
    }
}
