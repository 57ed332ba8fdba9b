import Foundation
import Testing
@testable import FlowLog

/// The flow log socket is the namespace's, by its identity: every spelling of one namespace
/// finds it, and two namespaces (the host's own included) never share one.
struct SocketPathTests {
    @Test func namedByTheNamespacesIdentity() throws {
        var st = stat()
        try #require(stat("/proc/self/ns/net", &st) == 0)
        let own = "/run/zonewall/flowlog-ns-\(st.st_dev)-\(st.st_ino).sock"
        #expect(FlowStreamServer.defaultPath(netns: nil) == own)
        #expect(FlowStreamServer.defaultPath(netns: "/proc/self/ns/net") == own)
        #expect(FlowStreamServer.defaultPath(netns: "/proc/\(getpid())/ns/net") == own)
        // A namespace that cannot be examined: the plain default, which no identity takes.
        #expect(FlowStreamServer.defaultPath(netns: "zw-no-such-namespace-\(UUID())") == FlowStreamServer.defaultPath)
    }
}
