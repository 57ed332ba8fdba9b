/// An error from a kernel (real or fake) that carries an errno, so layers above `Netfilter`
/// can react to specific failures without importing it.
public protocol KernelFailure: Error, CustomStringConvertible {
    var errno: Int32 { get }
}

extension KernelFailure {
    /// `ERESTART`: the ruleset generation moved since it was read; read again and retry.
    public var isGenerationMismatch: Bool { errno == 85 }
}

extension InMemoryKernel.Failure: KernelFailure {}
