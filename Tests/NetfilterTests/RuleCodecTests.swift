import CNetfilter
@testable import Netfilter
import Ruleset
import Testing

@Suite("Rules: model expressions <-> kernel expressions")
struct RuleCodecTests {
    let lowering = RuleLowering(family: .inet)
    let lifting = RuleLifting(family: .inet)
    let reg1 = NFT_REG_1.u32

    /// `nft --debug=netlink` for `ip saddr . meta l4proto . th dport @cc` in an inet table.
    @Test func concatenationMatchesNft() {
        let k = lowering.lower([.lookup([.ipSaddr, .l4proto, .thDport], set: "cc", negated: false)])
        #expect(k == [
            .meta(key: NFT_META_NFPROTO.u32, dreg: reg1), .cmp(op: NFT_CMP_EQ.u32, sreg: reg1, data: [2]),
            .payload(base: NFT_PAYLOAD_NETWORK_HEADER.u32, offset: 12, length: 4, dreg: reg1),
            .meta(key: NFT_META_L4PROTO.u32, dreg: 9), .byteorder(sreg: 9, dreg: 9, op: NFT_BYTEORDER_HTON.u32, length: 1, size: 2),
            .payload(base: NFT_PAYLOAD_TRANSPORT_HEADER.u32, offset: 2, length: 2, dreg: 10),
            .lookup(sreg: reg1, set: "cc", setID: nil, dreg: nil, inverted: false),
        ])
    }

    /// `ip6 saddr . meta l4proto . th dport`: registers 1, 2 (legacy name of reg32 04) and 13.
    @Test func ipv6ConcatenationRegisters() {
        let k = lowering.lower([.lookup([.ip6Saddr, .l4proto, .thDport], set: "cc6", negated: false)])
        let regs = k.compactMap { e -> UInt32? in
            switch e { case .payload(_, _, _, let r), .meta(_, let r): r; default: nil }
        }
        #expect(regs == [reg1, reg1, 2, 13])
    }

    /// `ct state established,related` is a flag test; `ct state != new` a plain compare.
    @Test func ctState() {
        #expect(lowering.lower([.match(.ctState, .anyBit(of: V.u32(6)))]) == [
            .ct(key: NFT_CT_STATE.u32, dreg: reg1),
            .bitwise(sreg: reg1, dreg: reg1, length: 4, mask: [6, 0, 0, 0], xor: [0, 0, 0, 0]),
            .cmp(op: NFT_CMP_NEQ.u32, sreg: reg1, data: [0, 0, 0, 0]),
        ])
        #expect(lowering.lower([.match(.ctState, .notEqual(V.u32(8)))]) == [
            .ct(key: NFT_CT_STATE.u32, dreg: reg1), .cmp(op: NFT_CMP_NEQ.u32, sreg: reg1, data: [8, 0, 0, 0]),
        ])
    }

    /// `icmp type echo-request` depends on `meta nfproto ipv4` and `meta l4proto icmp`,
    /// unless the rule already established them.
    @Test func icmpDependencies() {
        #expect(lowering.lower([.match(.icmpType, .equal(V.u8(8)))]).count == 6)
        #expect(lowering.lower([.match(.l4proto, .equal(V.u8(1))), .match(.icmpType, .equal(V.u8(8)))]).count == 4)
    }

    @Test func everyFixtureRuleLiftsBack() {
        for chain in Fixtures.table.chains {
            for rule in chain.rules {
                let kernel = lowering.lower(rule.expressions)
                #expect(lifting.lift(kernel) == rule.expressions, "\(NftText.render(rule))")
            }
        }
    }

    /// Each rule built by libnftnl (`nftnl_rule_nlmsg_build_payload`) and parsed back by it
    /// (`nftnl_rule_nlmsg_parse` and the expression getters) gives the same kernel expressions.
    @Test func encodedExpressionsDecode() throws {
        var table = Fixtures.table
        table.sets = []
        for chain in table.chains {
            for (i, rule) in chain.rules.enumerated() {
                let kernel = lowering.lower(rule.expressions)
                var one = Table(family: table.family, name: table.name)
                one.chains = [Chain(name: chain.name, rules: [rule])]
                var tx = Transaction(family: table.family, table: table.name)
                tx.changes = [.addRule(chain: chain.name, rule)]
                let batch = BatchEncoder(family: table.family, table: table.name, knownSets: [:])
                    .encode(tx, generation: nil, commit: true, firstSeq: 1)
                let message = try #require(NetlinkMessage.split(batch.bytes[batch.offsets[1]..<batch.offsets[2]]).first)
                let decoded = try #require(RuleDecoding.decode(message), "rule \(i) of \(chain.name)")
                #expect(decoded.expressions.map(\.normalized) == kernel.map(\.normalized), "\(NftText.render(rule))")
                #expect(decoded.chain == chain.name && decoded.table == table.name)
            }
        }
    }

    /// A rule with an expression kind, or an attribute, zonewall never writes is not handed to
    /// libnftnl (which would exit on a malformed one) and is described from its raw attributes.
    @Test func foreignRulesAreNotParsed() throws {
        var w = NetlinkWriter()
        let m = w.beginMessage(type: UInt16(NFNL_SUBSYS_NFTABLES) << 8 | NFT_MSG_NEWRULE.u16, flags: 0, seq: 1, family: Family.inet.rawValue)
        w.put(NFTA_RULE_TABLE.u16, string: "zonewall")
        w.put(NFTA_RULE_CHAIN.u16, string: "input")
        let list = w.beginNest(NFTA_RULE_EXPRESSIONS.u16)
        let e = w.beginNest(NFTA_LIST_ELEM.u16)
        w.put(NFTA_EXPR_NAME.u16, string: "meta")
        let d = w.beginNest(NFTA_EXPR_DATA.u16)
        w.put(NFTA_META_KEY.u16, u32: NFT_META_MARK.u32)
        w.put(NFTA_META_SREG.u16, bytes: [0, 0])  // wrong size: libnftnl would exit
        w.endNest(d)
        w.endNest(e)
        w.endNest(list)
        w.endMessage(m)
        let message = try #require(NetlinkMessage.split(w.bytes[...]).first)
        #expect(RuleDecoding.decode(message) == nil)
        #expect(RuleDecoding.summary(message).contains("[meta [attributes"))
        let decoded = try TableDecoder(family: .inet, strict: false).rule(message, table: "zonewall")
        #expect(decoded?.rule.comment?.hasPrefix(TableDecoder.undecodableMarker) == true)
    }

    @Test func foreignExpressionsAreNotLifted() {
        #expect(lifting.lift([.unknown("xt")]) == nil)
        // `meta mark` is not a selector zonewall knows.
        #expect(lifting.lift([.meta(key: NFT_META_MARK.u32, dreg: reg1), .cmp(op: 0, sreg: reg1, data: [1, 0, 0, 0])]) == nil)
        // A rate per minute is not `limit(perSecond:)`.
        #expect(lifting.lift([.limit(rate: 1, unit: 60, burst: 5, type: 0, flags: 0)]) == nil)
    }

    @Test func canonicalDependencyForms() {
        // An explicit `meta nfproto ipv6` before `ip6 saddr` is the same kernel rule as `ip6 saddr` alone.
        let e: [Expression] = [.match(.nfproto, .equal(V.u8(10))), .match(.ip6Saddr, .equal(V.v6("::1")))]
        #expect(lifting.lift(lowering.lower(e)) == [.match(.ip6Saddr, .equal(V.v6("::1")))])
        // `meta l4proto icmp icmp type echo-request` keeps its explicit protocol match.
        let icmp: [Expression] = [.match(.l4proto, .equal(V.u8(1))), .match(.icmpType, .equal(V.u8(8)))]
        #expect(lifting.lift(lowering.lower(icmp)) == icmp)
    }
}
