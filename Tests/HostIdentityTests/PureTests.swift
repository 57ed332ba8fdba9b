import HostIdentity
import Testing

@Suite struct CgroupMountTests {
    @Test func findsHybridMount() {
        let text = """
        25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        35 25 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
        36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
        37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
        """
        #expect(CgroupMount.cgroup2(inMountinfo: text) == "/sys/fs/cgroup/unified")
    }

    @Test func findsUnifiedMountAndUnescapes() {
        #expect(CgroupMount.cgroup2(inMountinfo: "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n") == "/sys/fs/cgroup")
        #expect(CgroupMount.cgroup2(inMountinfo: "29 23 0:26 / /mnt/my\\040cg rw - cgroup2 none rw\n") == "/mnt/my cg")
        #expect(CgroupMount.cgroup2(inMountinfo: "37 35 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n") == nil)
    }
}

@Suite struct CgroupIdentityTests {
    @Test func unitsMatchDirectoryNamesAnywhere() {
        let unit = CgroupIdentity.unit("billing.service")
        #expect(unit.matches(path: "/system.slice/billing.service"))
        #expect(unit.matches(path: "/user.slice/user-1000.slice/user@1000.service/app.slice/billing.service"))
        #expect(!unit.matches(path: "/system.slice/billing.service.d"))
        #expect(!unit.matches(path: "/system.slice"))
        #expect(!unit.matches(path: "/"))
    }

    @Test func unitGlobs() {
        let glob = CgroupIdentity.unit("billing-worker@*.service")
        #expect(glob.matches(path: "/system.slice/system-billing\\x2dworker.slice/billing-worker@3.service"))
        #expect(glob.matches(path: "/system.slice/billing-worker@.service"))
        #expect(!glob.matches(path: "/system.slice/billing-worker.service"))
        #expect(CgroupIdentity.unit("libpod-[0-9a-f]*.scope").matches(path: "/machine.slice/libpod-3f2a.scope"))
        #expect(!CgroupIdentity.unit("libpod-[0-9a-f]*.scope").matches(path: "/machine.slice/libpod-x3f2a.scope"))
        #expect(CgroupIdentity.unit("db?.service").matches(path: "/a/db1.service"))
        #expect(!CgroupIdentity.unit("db[!1].service").matches(path: "/a/db1.service"))
    }

    @Test func cgroupsMatchTheExactPath() {
        let cg = CgroupIdentity.cgroup("/machine.slice/libpod-3f2a.scope/")
        #expect(cg.matches(path: "/machine.slice/libpod-3f2a.scope"))
        #expect(!cg.matches(path: "/other/machine.slice/libpod-3f2a.scope"))
        #expect(CgroupIdentity.level(of: "/machine.slice/libpod-3f2a.scope") == 2)
        #expect(CgroupIdentity.level(of: "/") == 0)
    }
}

@Suite struct InMemoryCgroupSourceTests {
    @Test func followsAppearancesAndRestarts() async {
        let source = InMemoryCgroupSource()
        source.mkdir("/system.slice")
        let first = source.mkdir("/system.slice/billing.service")
        let identity = CgroupIdentity.unit("billing.service")
        var events = source.events(for: [identity, .cgroup("/absent")]).makeAsyncIterator()
        guard case .resynced(let snap) = await events.next() else { Issue.record("no resync first"); return }
        #expect(snap[identity] == [ResolvedCgroup(path: "/system.slice/billing.service", id: first, level: 2)])
        #expect(snap[.cgroup("/absent")] == [])

        source.rmdir("/system.slice/billing.service")
        let second = source.mkdir("/system.slice/billing.service")
        source.mkdir("/system.slice/other.service")  // matches nothing: no event
        source.mkdir("/user.slice")
        let third = source.mkdir("/user.slice/billing.service")
        #expect(await events.next() == .vanished(identity, ResolvedCgroup(path: "/system.slice/billing.service", id: first, level: 2)))
        #expect(await events.next() == .appeared(identity, ResolvedCgroup(path: "/system.slice/billing.service", id: second, level: 2)))
        #expect(await events.next() == .appeared(identity, ResolvedCgroup(path: "/user.slice/billing.service", id: third, level: 2)))
        #expect(second != first)
    }
}

@Suite struct UserResolverTests {
    @Test func namesAndUids() {
        #expect(UserResolver.uid("root") == 0)
        #expect(UserResolver.uid("1001") == 1001)
        #expect(UserResolver.uid("zw-no-such-user-\(UInt32.random(in: 0...UInt32.max))") == nil)
    }
}
