import CFuzzDriver
import Foundation
import Netfilter

/// libFuzzer target: nftables notification bytes → kernel events, or a typed error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNotifications(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    _ = try? decodeChangeNotifications(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@main
enum FuzzNotificationsMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzNotifications))
    }
}
