import CFuzzDriver
import FlowLog
import Foundation

/// libFuzzer target: NFLOG netlink messages → logged packets, or a typed error. Each packet is
/// also printed as `zonewall log --json` prints it, so a decoded value that cannot be shown traps here.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNFLog(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let packets = try? decodeNFLogMessages(bytes, receivedAt: Date(timeIntervalSince1970: 1_790_000_000)) else { return 0 }
    for p in packets {
        _ = p.flow
        _ = FlowRecord(packet: p, from: "world", to: "world", count: 1).jsonLine
    }
    return 0
}

@main
enum FuzzNFLogMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzNFLog))
    }
}
