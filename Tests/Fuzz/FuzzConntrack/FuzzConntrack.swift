import CFuzzDriver
import Conntrack
import Foundation
import Revocation

/// libFuzzer target: ctnetlink conntrack messages → conntrack entries, or a typed error. Each
/// entry is also shown as revocation logs it, so a decoded value that cannot be shown traps here.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConntrack(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let entries = try? decodeConntrackMessages(bytes) else { return 0 }
    for e in entries {
        _ = e.flow
        _ = (e.sourceText, e.destinationText, e.protoAndPort)
    }
    return 0
}

@main
enum FuzzConntrackMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzConntrack))
    }
}
