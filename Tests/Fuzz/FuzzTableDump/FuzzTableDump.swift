import CFuzzDriver
import Foundation
import Netfilter

/// libFuzzer target: netlink dump bytes → the Ruleset model, or a typed error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTableDump(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    if let table = try? decodeTableDump(Array(UnsafeBufferPointer(start: data, count: size))) {
        _ = table.elementCount
    }
    return 0
}

@main
enum FuzzTableDumpMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTableDump))
    }
}
