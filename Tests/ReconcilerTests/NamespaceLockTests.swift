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

    @Test func aNamespaceThatDoesNotExistHasNoLock() throws {
        #expect(try NamespaceLock.acquire(namespace: "zw-no-such-namespace-\(getpid())", holder: "x") == nil)
    }
}
