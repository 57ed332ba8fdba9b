import CNetfilter
import Ruleset

/// Lifts a rule's kernel expressions back to model expressions: the inverse of `RuleLowering`.
///
/// The result is accepted only if lowering it again gives exactly the kernel expressions
/// (set ids and counter values aside). Anything else, such as a rule someone added with an
/// expression zonewall does not generate, yields nil: the caller reports it as drift rather
/// than dropping what it does not understand.
struct RuleLifting {
    var family: Family

    /// The model expressions, or nil when the kernel rule is not one zonewall can express.
    func lift(_ kernel: [KernelExpression]) -> [Expression]? {
        guard let literal = liftLiterally(kernel) else { return nil }
        var stripped = literal
        stripDependencies(&stripped)
        let target = kernel.map(\.normalized)
        // Prefer the form `nft list` prints; keep explicit matches nft did not treat as dependencies
        // (`meta l4proto icmp icmp type …` has no implicit `meta nfproto`).
        return [stripped, literal].first { RuleLowering(family: family).lower($0).map(\.normalized) == target }
    }

    /// Every primitive pattern to its model expression, dependencies still explicit.
    private func liftLiterally(_ k: [KernelExpression]) -> [Expression]? {
        var out: [Expression] = []
        var i = 0
        let reg1 = NFT_REG_1.u32
        var l4proto: UInt8?

        /// The selector a load reads, given what the rule has established so far.
        func selector(_ e: KernelExpression) -> Selector? {
            switch e {
            case .meta(NFT_META_L4PROTO.u32, _): return .l4proto
            case .meta(NFT_META_NFPROTO.u32, _): return .nfproto
            case .ct(NFT_CT_STATE.u32, _): return .ctState
            case .ct(NFT_CT_MARK.u32, _): return .ctMark
            case .meta(NFT_META_SKUID.u32, _): return .metaSkuid
            case .meta(NFT_META_IIFNAME.u32, _): return .iifname
            case .meta(NFT_META_OIFNAME.u32, _): return .oifname
            case .socket(NFT_SOCKET_CGROUPV2.u32, let level, _): return Selector.cgroup(level: Int(level))
            case .payload(let base, let offset, let length, _):
                return Selector.allCases.first { s in
                    let l = SelectorLoad.of(s)
                    guard l.source == .payload(base: base, offset: offset), l.width == Int(length) else { return false }
                    return l.l4proto == nil || l.l4proto == l4proto
                }
            default: return nil
            }
        }
        func dreg(_ e: KernelExpression) -> UInt32? {
            switch e {
            case .meta(_, let r), .ct(_, let r), .payload(_, _, _, let r), .socket(_, _, let r): r
            default: nil
            }
        }
        func value(_ bytes: [UInt8], _ sel: Selector) -> Value? {
            let t = sel.dataType
            guard bytes.count == t.width else { return nil }
            return Value(bytes: t.isBigEndian ? bytes : bytes.reversed())
        }

        while i < k.count {
            let e = k[i]
            if let sel = selector(e), let r = dreg(e) {
                let next = i + 1 < k.count ? k[i + 1] : nil
                let after = i + 2 < k.count ? k[i + 2] : nil
                if sel == .ctMark, r == reg1, case .bitwise(reg1, reg1, 4, let mask, let xor)? = next,
                   case .ctSet(NFT_CT_MARK.u32, reg1)? = after, let m = value(mask, sel), let x = value(xor, sel) {
                    out.append(.setCtMarkField(mask: ~UInt32(truncatingIfNeeded: m.low), value: UInt32(truncatingIfNeeded: x.low)))
                    i += 3
                } else if r == reg1, case .bitwise(reg1, reg1, _, let mask, let xor)? = next,
                   case .cmp(NFT_CMP_EQ.u32, reg1, let data)? = after, sel != .ctState,
                   xor.allSatisfy({ $0 == 0 }), let m = value(mask, sel), let v = value(data, sel) {
                    out.append(.match(sel, .masked(m, equals: v)))
                    i += 3
                } else if r == reg1, case .bitwise(reg1, reg1, _, let mask, let xor)? = next,
                   case .cmp(NFT_CMP_NEQ.u32, reg1, let zero)? = after,
                   xor.allSatisfy({ $0 == 0 }), zero.allSatisfy({ $0 == 0 }), let m = value(mask, sel) {
                    out.append(.match(sel, .anyBit(of: m)))
                    i += 3
                } else if r == reg1, case .cmp(NFT_CMP_GTE.u32, reg1, let lo)? = next,
                          case .cmp(NFT_CMP_LTE.u32, reg1, let hi)? = after, let l = value(lo, sel), let h = value(hi, sel) {
                    out.append(.match(sel, .inRange(l, h)))
                    i += 3
                } else if r == reg1, case .cmp(let op, reg1, let data)? = next, let v = value(data, sel),
                          op == NFT_CMP_EQ.u32 || op == NFT_CMP_NEQ.u32 {
                    out.append(.match(sel, op == NFT_CMP_EQ.u32 ? .equal(v) : .notEqual(v)))
                    if sel == .l4proto, op == NFT_CMP_EQ.u32 { l4proto = data[0] }
                    i += 2
                } else {
                    // A key of one or more loads, then a lookup reading from the first register.
                    var sels: [Selector] = [sel]
                    var j = i + 1
                    while j < k.count {
                        if case .byteorder = k[j] { j += 1; continue }
                        guard let s = selector(k[j]), dreg(k[j]) != nil else { break }
                        sels.append(s)
                        j += 1
                    }
                    guard j < k.count, case .lookup(r, let set, _, let d, let inverted) = k[j] else { return nil }
                    if d == nil {
                        out.append(.lookup(sels, set: set, negated: inverted))
                    } else if d == NFT_REG_VERDICT.u32, !inverted {
                        out.append(.verdictMap(sels, map: set))
                    } else {
                        return nil
                    }
                    i = j + 1
                }
                continue
            }
            switch e {
            case .counter: out.append(.counter)
            case .limit(let rate, 1, let burst, NFT_LIMIT_PKTS.u32, 0): out.append(.limit(perSecond: rate, burst: burst))
            case .log(let prefix): out.append(.log(prefix: prefix))
            case .nflog(let group, let prefix): out.append(.nflog(group: group, prefix: prefix))
            case .reject(NFT_REJECT_TCP_RST.u32, 0): out.append(.reject(.tcpReset))
            case .reject(NFT_REJECT_ICMPX_UNREACH.u32, UInt8(NFT_REJECT_ICMPX_PORT_UNREACH.rawValue)):
                out.append(.reject(.icmpxPortUnreachable))
            case .immediate(let v): out.append(.verdict(v))
            default: return nil
            }
            i += 1
        }
        return out
    }

    /// Removes `meta nfproto` / `meta l4proto` matches that only serve as the next
    /// expression's implicit dependency, as `nft list` does.
    private func stripDependencies(_ e: inout [Expression]) {
        func needs(_ x: Expression) -> (nfproto: Set<UInt8>, l4proto: Set<UInt8>) {
            let sels: [Selector] = switch x {
            case .match(let s, _): [s]
            case .lookup(let s, _, _), .verdictMap(let s, _): s
            default: []
            }
            let loads = sels.map(SelectorLoad.of)
            return (Set(loads.compactMap(\.nfproto)), Set(loads.compactMap(\.l4proto)))
        }
        var i = e.count - 2
        while i >= 0 {
            if case .match(let s, .equal(let v)) = e[i], s == .nfproto || s == .l4proto {
                let n = needs(e[i + 1])
                let byte = UInt8(truncatingIfNeeded: v.low)
                if (s == .nfproto && n.nfproto.contains(byte)) || (s == .l4proto && n.l4proto.contains(byte)) {
                    e.remove(at: i)
                }
            }
            i -= 1
        }
    }
}
