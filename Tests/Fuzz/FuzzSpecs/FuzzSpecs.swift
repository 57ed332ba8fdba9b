import CFuzzDriver
import Foundation
import ZonePolicy

/// libFuzzer target: the port-spec and address parsers. The first byte picks the parser; a
/// value they accept must print as text that parses back to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpecs(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    guard size > 0 else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    if data[0] & 1 == 0 {
        if case .success(let spec) = PortSpec.parse(text) {
            guard case .success(let again) = PortSpec.parse(spec.description), again == spec else {
                fatalError("port spec \(spec) does not survive printing and parsing")
            }
        }
    } else if let prefix = IPPrefix.parse(text) {
        guard IPPrefix.parse(prefix.description) == prefix else {
            fatalError("address \(prefix) does not survive printing and parsing")
        }
        _ = prefix.normalized
    }
    return 0
}

@main
enum FuzzSpecsMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzSpecs))
    }
}
