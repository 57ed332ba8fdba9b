import Foundation
import Glibc
import HostIdentity
import Testing

/// A cgroup of the test's own under the real cgroup2 mount, removed (children first) on `remove()`.
final class TestCgroup {
    let watcher: CgroupWatcher
    /// Path from the cgroup2 root, e.g. `/zw-1a2b3c`.
    let path: String
    private var created: [String] = []

    init?(_ test: String = #function) {
        guard geteuid() == 0 else {
            print("""
            ********************************************************************
            ** SKIPPED \(test): needs root (creates cgroups under the cgroup2 mount).
            ** Run `sudo swift test --filter HostIdentityTests` to test the cgroup watcher.
            ********************************************************************
            """)
            return nil
        }
        guard let w = CgroupWatcher.current() else {
            print("** SKIPPED \(test): no cgroup2 mount in /proc/self/mountinfo **")
            return nil
        }
        watcher = w
        path = "/zw-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        mkdir("")
    }

    /// Creates `path + sub`; returns its full path under the mount.
    @discardableResult
    func mkdir(_ sub: String) -> String {
        let p = path + sub
        let rc = Glibc.mkdir(watcher.root + p, 0o755)
        precondition(rc == 0, "mkdir \(watcher.root + p): \(String(cString: strerror(errno)))")
        created.append(p)
        return p
    }

    func rmdir(_ sub: String) {
        let p = path + sub
        precondition(Glibc.rmdir(watcher.root + p) == 0, "rmdir \(p): \(String(cString: strerror(errno)))")
        created.removeAll { $0 == p }
    }

    func remove() {
        for p in created.reversed() { _ = Glibc.rmdir(watcher.root + p) }
        created = []
    }

    deinit { remove() }
}

/// The next event, or nil after `timeout`.
func next(_ it: inout AsyncStream<CgroupEvent>.Iterator, timeout: Duration = .seconds(5)) async -> CgroupEvent? {
    let box = IteratorBox(it)
    let result = await withTaskGroup(of: CgroupEvent?.self) { group in
        group.addTask { await box.next() }
        group.addTask { try? await Task.sleep(for: timeout); return nil }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
    it = box.it
    return result
}

final class IteratorBox: @unchecked Sendable {
    var it: AsyncStream<CgroupEvent>.Iterator
    init(_ it: AsyncStream<CgroupEvent>.Iterator) { self.it = it }
    func next() async -> CgroupEvent? { await it.next() }
}

@Suite(.serialized) struct CgroupWatcherTests {
    @Test func mountIsFoundAndRootHasLevelZero() throws {
        guard let cg = TestCgroup() else { return }
        defer { cg.remove() }
        let resolved = try #require(cg.watcher.resolve(path: cg.path))
        #expect(resolved.level == 1)
        var st = stat()
        #expect(stat(cg.watcher.root + cg.path, &st) == 0)
        #expect(resolved.id == UInt64(st.st_ino))
        #expect(cg.watcher.resolve(path: cg.path + "/nope") == nil)
    }

    @Test func snapshotResolvesUnitsAnywhereAndCgroupPaths() throws {
        guard let cg = TestCgroup() else { return }
        defer { cg.remove() }
        cg.mkdir("/system.slice")
        let a = cg.mkdir("/system.slice/zwt-billing.service")
        cg.mkdir("/user.slice")
        cg.mkdir("/user.slice/app.slice")
        let b = cg.mkdir("/user.slice/app.slice/zwt-billing.service")
        let w = cg.mkdir("/system.slice/zwt-worker@7.service")
        let unit = CgroupIdentity.unit("zwt-billing.service")
        let glob = CgroupIdentity.unit("zwt-worker@*.service")
        let path = CgroupIdentity.cgroup(cg.path + "/user.slice/app.slice")
        let missing = CgroupIdentity.cgroup(cg.path + "/absent")
        let snap = cg.watcher.snapshot(for: [unit, glob, path, missing])
        #expect(snap[unit]?.map(\.path) == [a, b])
        #expect(snap[unit]?.map(\.level) == [3, 4])
        #expect(snap[glob]?.map(\.path) == [w])
        #expect(snap[path]?.map(\.path) == [cg.path + "/user.slice/app.slice"])
        #expect(snap[missing] == [])
    }

    @Test func followsAppearancesVanishingsAndRestarts() async throws {
        guard let cg = TestCgroup() else { return }
        defer { cg.remove() }
        cg.mkdir("/system.slice")
        // A unit name of this run only: a unit is found anywhere in the hierarchy, and a test
        // process that crashed before cleaning up may have left a cgroup of that name behind.
        let name = "zwt-db-\(String(UInt32.random(in: 0...UInt32.max), radix: 36)).service"
        let unit = CgroupIdentity.unit(name)
        let nested = CgroupIdentity.cgroup(cg.path + "/machine.slice/ctr.scope/inner")
        var events = cg.watcher.events(for: [unit, nested]).makeAsyncIterator()
        guard case .resynced(let snap) = await next(&events) else { Issue.record("no resync first"); return }
        #expect(snap[unit] == [])

        let p = cg.mkdir("/system.slice/" + name)
        let first = try #require(cg.watcher.resolve(path: p))
        #expect(await next(&events) == .appeared(unit, first))

        // A restart: systemd removes the cgroup and makes a new one, with a new id.
        cg.rmdir("/system.slice/" + name)
        #expect(await next(&events) == .vanished(unit, first))
        cg.mkdir("/system.slice/" + name)
        let second = try #require(cg.watcher.resolve(path: p))
        #expect(second.id != first.id)
        #expect(await next(&events) == .appeared(unit, second))

        // Directories made in quick succession, deeper than any watch so far.
        cg.mkdir("/machine.slice")
        cg.mkdir("/machine.slice/ctr.scope")
        let inner = cg.mkdir("/machine.slice/ctr.scope/inner")
        let resolved = try #require(cg.watcher.resolve(path: inner))
        #expect(resolved.level == 4)
        #expect(await next(&events) == .appeared(nested, resolved))

        // Nothing else was reported: the unrelated directories gave no event.
        cg.rmdir("/machine.slice/ctr.scope/inner")
        #expect(await next(&events) == .vanished(nested, resolved))
        #expect(await next(&events, timeout: .milliseconds(200)) == nil)
    }
}
