import CNetfilter
@testable import Netfilter
import Foundation
import Glibc
import Ruleset
import Testing

/// Values and ranges from text, for readable fixtures.
enum V {
    static func v4(_ s: String) -> Value {
        var a = in_addr()
        precondition(inet_pton(AF_INET, s, &a) == 1, "bad IPv4 \(s)")
        return Value(UInt64(UInt32(bigEndian: a.s_addr)), width: 4)
    }

    static func v6(_ s: String) -> Value {
        var a = in6_addr()
        precondition(inet_pton(AF_INET6, s, &a) == 1, "bad IPv6 \(s)")
        let bytes = withUnsafeBytes(of: a) { Array($0) }
        return Value(bytes: bytes)
    }

    /// `10.0.0.0/8`, `192.0.2.5`, `10.0.0.1-10.0.0.9`, and the same for IPv6.
    static func net(_ s: String) -> ValueRange {
        let isV6 = s.contains(":")
        func addr(_ t: Substring) -> Value { isV6 ? v6(String(t)) : v4(String(t)) }
        if let slash = s.firstIndex(of: "/") {
            let base = addr(s[..<slash]), len = Int(s[s.index(after: slash)...])!
            let bits = base.width * 8
            let host: UInt128 = len == 0 ? (bits == 128 ? .max : (UInt128(1) << UInt128(bits)) - 1)
                : (UInt128(1) << UInt128(bits - len)) - 1
            return ValueRange(Value(base.uint128 & ~host, width: base.width), Value(base.uint128 | host, width: base.width))
        }
        if let dash = s.firstIndex(of: "-") {
            return ValueRange(addr(s[..<dash]), addr(s[s.index(after: dash)...]))
        }
        return ValueRange(addr(s[...]))
    }

    static func proto(_ p: UInt8) -> ValueRange { ValueRange(Value(UInt64(p), width: 1)) }
    static func port(_ lo: UInt16, _ hi: UInt16? = nil) -> ValueRange {
        ValueRange(Value(UInt64(lo), width: 2), Value(UInt64(hi ?? lo), width: 2))
    }
    static func u8(_ v: UInt8) -> Value { Value(UInt64(v), width: 1) }
    static func u16(_ v: UInt16) -> Value { Value(UInt64(v), width: 2) }
    static func u32(_ v: UInt32) -> Value { Value(UInt64(v), width: 4) }
}

/// Whether the process may create network namespaces and talk to nftables.
let isRoot = geteuid() == 0

/// Kernel tests carry this trait, so that without root they are reported as skipped, not passed.
let needsRoot = ConditionTrait.enabled(if: isRoot, "needs root (network namespaces + nftables)")

func skipUnlessRoot(_ test: String = #function) -> Bool {
    if !isRoot {
        print("""
        ********************************************************************
        ** SKIPPED \(test): needs root (network namespaces + nftables).
        ** Run `sudo swift test --filter NetfilterTests` to exercise netlink.
        ********************************************************************
        """)
    }
    return !isRoot
}

/// Runs a command, returning stdout; throws with stderr on failure.
@discardableResult
func run(_ args: [String], input: String? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    if input != nil { p.standardInput = inp }
    try p.run()
    if let input {
        inp.fileHandleForWriting.write(Data(input.utf8))
        try inp.fileHandleForWriting.close()
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw CommandError(command: args.joined(separator: " "), status: p.terminationStatus,
                           stderr: String(decoding: e, as: UTF8.self))
    }
    return String(decoding: o, as: UTF8.self)
}

struct CommandError: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var stderr: String
    var description: String { "`\(command)` exited \(status): \(stderr)" }
}

/// A network namespace that exists for the duration of `body`, deleted even on failure.
/// Every netlink socket and every `nft` run of these tests lives in one of these.
func withNamespace<T>(_ body: (String) throws -> T) throws -> T {
    let name = "zw-nf-\(UInt32.random(in: 0...UInt32.max))"
    try run(["ip", "netns", "add", name])
    defer { _ = try? run(["ip", "netns", "delete", name]) }
    return try body(name)
}

/// `nft …` inside the namespace.
@discardableResult
func nft(_ ns: String, _ args: [String], input: String? = nil) throws -> String {
    try run(["ip", "netns", "exec", ns, "nft"] + args, input: input)
}

/// The table with chains and sets in the order the kernel lists them after a
/// `Transaction.create`: `Table.declarationOrder`.
func inKernelOrder(_ t: Table) -> Table {
    var out = t
    out.sets = []
    out.chains = []
    for item in t.declarationOrder {
        switch item {
        case .set(let s): out.sets.append(s)
        case .chain(let c): out.chains.append(c)
        }
    }
    return out
}

/// Encoded messages as a dump returns them: the encoder numbers element nests 1, 2, 3… as
/// nft does (the kernel ignores the numbers), while a dump types every element
/// `NFTA_LIST_ELEM`, which is what libnftnl's `nftnl_set_elems_nlmsg_parse` accepts.
func dumpForm(_ bytes: [UInt8]) -> [UInt8] {
    var out = bytes
    for m in NetlinkMessage.split(bytes[...]) where m.type & 0xff == NFT_MSG_NEWSETELEM.u16 {
        guard let list = m.attributes[NFTA_SET_ELEM_LIST_ELEMENTS.u16]?.nested else { continue }
        for element in list {
            let type = UInt16(NFTA_LIST_ELEM.u16) | UInt16(NLA_F_NESTED)
            out[element.offset + 2] = UInt8(type & 0xff)
            out[element.offset + 3] = UInt8(type >> 8)
        }
    }
    return out
}
