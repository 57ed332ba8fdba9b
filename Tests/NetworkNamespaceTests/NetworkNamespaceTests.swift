import Foundation
import Glibc
import Testing
import NetworkNamespace

struct NetworkNamespaceTests {
    @Test func namesAreUnderRunNetnsAndPathsAreKept() {
        #expect(NetworkNamespace("zw-a").path == "/run/netns/zw-a")
        #expect(NetworkNamespace("/proc/1/ns/net").path == "/proc/1/ns/net")
    }

    @Test func aMissingNamespaceIsAnErrorAndTheBodyDoesNotRun() {
        var ran = false
        let result = NetworkNamespace("zw-no-such-namespace-\(getpid())").run { ran = true }
        #expect(!ran)
        #expect(throws: NetworkNamespace.EntryError(
            operation: "opening network namespace /run/netns/zw-no-such-namespace-\(getpid()) (no such namespace: `ip netns list` shows the names there are)",
            errno: ENOENT)) { try result.get() }
    }

    /// A file that is no namespace (`--netns /etc`, `--netns ../../etc`): EINVAL, with what to give instead.
    @Test func aFileThatIsNoNamespaceSaysSo() {
        var ran = false
        let result = NetworkNamespace("/etc").run { ran = true }
        #expect(!ran)
        #expect(throws: NetworkNamespace.EntryError(
            operation: "entering network namespace /etc (/etc is not a network namespace: name one that `ip netns list` shows, "
                + "or give a path such as /proc/PID/ns/net)", errno: EINVAL)) { try result.get() }
    }

    /// The namespace of a thread, as the inode of its `/proc/thread-self/ns/net`.
    static func currentNamespaceInode() -> UInt64 {
        var st = stat()
        return stat("/proc/thread-self/ns/net", &st) == 0 ? UInt64(st.st_ino) : 0
    }

    @Test func runsTheBodyInsideTheNamespaceAndLeavesTheCallerWhereItWas() throws {
        guard getuid() == 0 else {
            print("⚠️  SKIPPED \(#function): needs root (it creates a network namespace)")
            return
        }
        let name = "zw-nstest-\(getpid())"
        func ip(_ args: String...) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            p.arguments = args
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "ip \(args.joined(separator: " "))")
        }
        try ip("netns", "add", name)
        defer { try? ip("netns", "del", name) }
        var st = stat()
        #expect(stat("/run/netns/\(name)", &st) == 0)
        let before = Self.currentNamespaceInode()
        let inside = try NetworkNamespace(name).run { Self.currentNamespaceInode() }.get()
        #expect(inside == UInt64(st.st_ino), "the body ran in the namespace")
        #expect(inside != before)
        #expect(Self.currentNamespaceInode() == before, "the calling thread did not move")
    }
}
