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

    /// A host of numbers is a dotted-quad IPv4 address or an error: the resolver reads other
    /// numeric forms the inet_aton way (1.2.3 is 1.2.0.3, 010.0.0.1 is 8.0.0.1), or looks
    /// 256.1.1.1 up as a name, and the client went to another host.
    @Test func aNumericHostIsADottedQuad() {
        for good in ["0.0.0.0:2379", "255.255.255.255:1", "http://10.20.30.40:2379", "https://192.0.2.1:2379/", "1e100.net:443",
                     "2001-db8.example:2379", "etcd0.example:2379", "a.0x7f:1"] {
            #expect(EtcdConfiguration.endpointProblem(good) == nil, "\(good)")
        }
        let reason = "is not an IPv4 address: write four numbers 0 to 255 in decimal, without leading zeros (a.b.c.d)"
        #expect(EtcdConfiguration.endpointProblem("256.1.1.1:2379") == "host '256.1.1.1' \(reason)")
        #expect(EtcdConfiguration.endpointProblem("http://1.2.3:2379") == "host '1.2.3' \(reason)")
        for bad in ["1.2.3.4.5:1", "1.2.3.4.:1", "1.2.3.999:1", "2130706433:1", "010.0.0.1:1", "1.2.3.0400:1", "0x7f.0.0.1:1",
                    "0x7f.1:1", "127.1:1", "1..2.3:1", "1.2.3.1000:1"] {
            #expect(EtcdConfiguration.endpointProblem(bad)?.hasSuffix(reason) == true, "\(bad): \(EtcdConfiguration.endpointProblem(bad) ?? "accepted")")
        }
    }

    @Test func commandsExit1OnABadEndpoint() throws {
        for bad in ["256.1.1.1:2379", "http://1.2.3:2379"] {
            let o = try zonewall(["member", "list", "--etcd-endpoints", bad], seconds: 10)
            #expect(o.status == 1, "\(bad): \(o)")
            #expect(o.stderr.contains("is not an IPv4 address: write four numbers 0 to 255"), "\(bad): \(o)")
        }
        for bad in ["ftp://x:1", "http://exa mple:1"] {
            let o = try zonewall(["member", "list", "--etcd-endpoints", bad], seconds: 10)
            #expect(o.status == 1, "\(bad): \(o)")
            #expect(o.stderr.contains("etcd endpoint '\(bad)' is not HOST:PORT or http(s)://HOST:PORT"), "\(bad): \(o)")
        }
    }
}
