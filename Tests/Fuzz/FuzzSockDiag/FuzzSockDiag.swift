import CFuzzDriver
import Foundation
import Revocation
import SocketDiag

/// libFuzzer target: sock_diag replies → sockets, or a typed error. The first byte picks the
/// protocol the dump asked for (TCP or UDP); the sockets are also indexed as revocation indexes
/// them, so a decoded value the index cannot take traps here.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSockDiag(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    guard let sockets = try? decodeSockDiagMessages(bytes, proto: data[0] & 1 == 0 ? 6 : 17) else { return 0 }
    let index = SocketIndex(sockets)
    for s in sockets {
        _ = index.socket(family: s.family, proto: s.proto, local: s.localAddress, localPort: s.localPort,
                         remote: s.remoteAddress, remotePort: s.remotePort)
    }
    return 0
}

@main
enum FuzzSockDiagMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzSockDiag))
    }
}
