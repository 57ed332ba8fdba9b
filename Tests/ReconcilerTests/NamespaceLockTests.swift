import Foundation
import Testing
@testable import Reconciler

/// One controller per network namespace: a second is refused and told who holds it; the lock
/// goes with its holder. (This process's own namespace: taking a lock changes no firewall.)
struct NamespaceLockTests {
    @Test func aSecondHolderIsRefusedAndToldWho() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-lock-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first: NamespaceLock? = try #require(try NamespaceLock.acquire(namespace: nil, holder: "zonewall run, policies /p (pid 1)", directory: dir))
        let info = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first)
        #expect(try String(contentsOfFile: "\(dir)/\(info)", encoding: .utf8) == "zonewall run, policies /p (pid 1)\n")

        #expect {
            _ = try NamespaceLock.acquire(namespace: nil, holder: "zonewall apply", directory: dir)
        } throws: { error in
            let held = error as? NamespaceLock.Held
            return held?.holder == "zonewall run, policies /p (pid 1)"
                && held?.description.contains("this network namespace is already managed by zonewall run") == true
        }

        withExtendedLifetime(first) {}
        first = nil
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "the description goes with the lock")
        let again = try NamespaceLock.acquire(namespace: nil, holder: "zonewall apply", directory: dir)
        #expect(again != nil)
    }

    /// A holder killed with SIGKILL leaves its description behind; the next holder of any
    /// namespace removes it. A live holder's description stays.
    @Test func descriptionsOfDeadHoldersAreSwept() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-lock-sweep-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A pid that is certainly gone: a child that has exited and been reaped.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        try "zonewall run, policies /p (pid \(child.processIdentifier))\n".write(toFile: "\(dir)/netns-1-100", atomically: true, encoding: .utf8)
        try "zonewall run, policies /q (pid \(getpid()))\n".write(toFile: "\(dir)/netns-1-101", atomically: true, encoding: .utf8)
        try "something else\n".write(toFile: "\(dir)/netns-1-102", atomically: true, encoding: .utf8)
        let lock = try #require(try NamespaceLock.acquire(namespace: nil, holder: "zonewall apply (pid \(getpid()))", directory: dir))
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(!left.contains("netns-1-100"), "\(left)")
        #expect(left.contains("netns-1-101") && left.contains("netns-1-102"), "\(left)")
        #expect(left.count == 3, "ours, the live holder's and the one without a pid: \(left)")
        withExtendedLifetime(lock) {}
    }

    @Test func aNamespaceThatDoesNotExistHasNoLock() throws {
        #expect(try NamespaceLock.acquire(namespace: "zw-no-such-namespace-\(getpid())", holder: "x") == nil)
    }
}
