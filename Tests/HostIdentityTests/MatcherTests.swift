@testable import HostIdentity
import Testing

/// The indexed matcher gives exactly what trying every identity on every path gives.
struct MatcherTests {
    @Test func indexedMatchingEqualsTryingEveryIdentity() {
        var identities: Set<CgroupIdentity> = [
            .unit("billing.service"), .unit("billing*.service"), .unit("*.scope"), .unit("worker@?.service"),
            .unit("db-[ab].service"), .cgroup("/system.slice/billing.service"), .cgroup("//machine.slice/"),
            .cgroup("/"), .unit("system.slice"),
        ]
        for i in 0..<300 { identities.insert(.unit("u\(i).service")) }
        var paths = ["/", "/system.slice", "/machine.slice", "/system.slice/billing.service", "/user.slice/billing.service",
                     "/system.slice/billing-worker.service", "/user.slice/user-1000.slice/session-2.scope",
                     "/system.slice/worker@1.service", "/system.slice/worker@12.service", "/system.slice/db-a.service",
                     "/system.slice/db-c.service", "/a/b/c/u7.service", "/u300.service"]
        for i in stride(from: 0, to: 320, by: 7) { paths.append("/system.slice/u\(i).service") }
        let matcher = CgroupMatcher(identities)
        for path in paths {
            let naive = identities.sorted().filter { $0.matches(path: path) }
            #expect(matcher.matching(path) == naive, "\(path)")
        }
        #expect(matcher.matching("/system.slice/billing.service") ==
                [.unit("billing*.service"), .unit("billing.service"), .cgroup("/system.slice/billing.service")])
    }
}
