import CFuzzDriver
import Foundation
import ZonePolicy

/// libFuzzer target: policy file bytes → diagnostics. Anything but a crash, hang or leak is fine.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicyLoader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let result = PolicyLoader.parse([PolicyFile(path: "fuzz.yaml", contents: text)], concurrently: false)
    for d in result.diagnostics { _ = d.description }
    if result.policy != nil && result.errors.count > 0 { fatalError("a policy with errors was accepted") }
    return 0
}

@main
enum FuzzPolicyLoaderMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzPolicyLoader))
    }
}
