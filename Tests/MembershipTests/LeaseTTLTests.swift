import Membership
import Testing

/// `member add --ttl`: what a lease TTL may be.
struct LeaseTTLTests {
    @Test func parsesUnitsWithinEtcdsRange() {
        #expect(Registration.parseTTL("10s") == 10)
        #expect(Registration.parseTTL("1m") == 60)
        #expect(Registration.parseTTL("2h") == 7200)
        #expect(Registration.parseTTL("15") == 15)
        #expect(Registration.parseTTL("1s") == 1)
        #expect(Registration.parseTTL("9000000000s") == 9_000_000_000)
        #expect(Registration.parseTTL("150000000m") == 9_000_000_000)
    }

    @Test func rejectsOutOfRangeWithoutOverflow() {
        // n * 60 overflowed and trapped; an hour count past etcd's maximum retried forever.
        for bad in ["9223372036854775807m", "9223372036854775807h", "1000000000000h", "9000000001s", "2500001h",
                    "0s", "0", "-5s", "500ms", "s", "", "1.5s", "10x", "+٣s"] {
            #expect(Registration.parseTTL(bad) == nil, "\(bad)")
        }
    }
}
