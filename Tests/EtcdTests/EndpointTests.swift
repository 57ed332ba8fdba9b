import Foundation
import Membership
import Testing

/// `--etcd-endpoints`: scheme, host and port are checked when the options are validated.
struct EndpointTests {
    @Test func acceptsHostPortAndHTTPURLs() {
        for good in ["127.0.0.1:2379", "etcd-1.example:2379", "[::1]:2379", "http://10.0.0.1:2379", "https://etcd.example:2379/",
                     "http://[2001:db8::1]:2379"] {
            #expect(EtcdConfiguration.endpointProblem(good) == nil, "\(good)")
        }
    }

    @Test func rejectsOtherSchemesHostsAndPorts() {
        #expect(EtcdConfiguration.endpointProblem("ftp://x:1") == "scheme 'ftp' is not http or https")
        #expect(EtcdConfiguration.endpointProblem("http://exa mple:1") == "host 'exa mple' is not a host name or an address")
        for bad in ["x", "x:0", "x:65536", "x:+1", "http://x", "http://:1", ":2379", "http://x:1/v3", "[zz]:1", "a_b:1", "http://x:1:2"] {
            #expect(EtcdConfiguration.endpointProblem(bad) != nil, "\(bad)")
        }
    }

    @Test func commandsExit1OnABadEndpoint() throws {
        for bad in ["ftp://x:1", "http://exa mple:1"] {
            let o = try zonewall(["member", "list", "--etcd-endpoints", bad], seconds: 10)
            #expect(o.status == 1, "\(bad): \(o)")
            #expect(o.stderr.contains("etcd endpoint '\(bad)' is not HOST:PORT or http(s)://HOST:PORT"), "\(bad): \(o)")
        }
    }
}
