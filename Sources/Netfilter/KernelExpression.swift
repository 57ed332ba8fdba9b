import CNetfilter
import Ruleset

/// One nf_tables expression as the kernel runs it (`struct nft_expr_ops` in the kernel,
/// `nftnl_expr` in libnftnl): the level below `Ruleset.Expression`.
///
/// Rules are encoded by lowering each model expression to these (`RuleLowering`) and
/// decoded by lifting them back (`RuleLifting`).
enum KernelExpression: Hashable, Sendable {
    case meta(key: UInt32, dreg: UInt32)
    case payload(base: UInt32, offset: UInt32, length: UInt32, dreg: UInt32)
    case ct(key: UInt32, dreg: UInt32)
    /// `ct KEY set` from a register (`nft_ct` with `NFTA_CT_SREG`).
    case ctSet(key: UInt32, sreg: UInt32)
    /// A local socket's property into a register (`nft_socket`); `level` only for cgroupv2.
    case socket(key: UInt32, level: UInt32, dreg: UInt32)
    case cmp(op: UInt32, sreg: UInt32, data: [UInt8])
    case bitwise(sreg: UInt32, dreg: UInt32, length: UInt32, mask: [UInt8], xor: [UInt8])
    case byteorder(sreg: UInt32, dreg: UInt32, op: UInt32, length: UInt32, size: UInt32)
    /// `setID` names a set created in the same batch; the kernel does not report it back.
    case lookup(sreg: UInt32, set: String, setID: UInt32?, dreg: UInt32?, inverted: Bool)
    /// A verdict loaded into the verdict register.
    case immediate(Verdict)
    /// Counter values are state, not configuration: they are neither sent nor compared.
    case counter
    case limit(rate: UInt64, unit: UInt64, burst: UInt32, type: UInt32, flags: UInt32)
    case log(prefix: String)
    /// `log` with `NFTA_LOG_GROUP`: NFLOG instead of the kernel log.
    case nflog(group: UInt16, prefix: String)
    case reject(type: UInt32, code: UInt8)
    /// Anything zonewall does not generate, described for the drift report.
    case unknown(String)

    /// The expression with batch-only details removed, for comparing with a kernel dump.
    var normalized: KernelExpression {
        if case .lookup(let s, let set, _, let d, let inv) = self { return .lookup(sreg: s, set: set, setID: nil, dreg: d, inverted: inv) }
        return self
    }
}

// MARK: - Verdicts in set elements

extension KernelExpression {
    /// `NFTA_DATA_VERDICT` with its code and, for jump/goto, the chain.
    static func putVerdict(_ v: Verdict, _ w: inout NetlinkWriter) {
        let n = w.beginNest(NFTA_DATA_VERDICT.u16)
        w.put(NFTA_VERDICT_CODE.u16, u32: UInt32(bitPattern: verdictCode(v)))
        switch v {
        case .jump(let c), .goto(let c): w.put(NFTA_VERDICT_CHAIN.u16, string: c)
        default: break
        }
        w.endNest(n)
    }

    static func verdictCode(_ v: Verdict) -> Int32 {
        switch v {
        case .accept: NF_ACCEPT
        case .drop: NF_DROP
        case .continue: NFT_CONTINUE.rawValue
        case .return: NFT_RETURN.rawValue
        case .jump: NFT_JUMP.rawValue
        case .goto: NFT_GOTO.rawValue
        }
    }
}

// MARK: - Decoding

extension KernelExpression {
    /// A verdict from an `NFTA_DATA_*` nest holding `NFTA_DATA_VERDICT`.
    static func decodeVerdict(_ data: NetlinkAttribute) -> Verdict? {
        guard let v = data.nested[NFTA_DATA_VERDICT.u16]?.nested, let code = v[NFTA_VERDICT_CODE.u16] else { return nil }
        return RuleDecoding.verdict(code: code.u32, chain: v[NFTA_VERDICT_CHAIN.u16]?.string)
    }
}
