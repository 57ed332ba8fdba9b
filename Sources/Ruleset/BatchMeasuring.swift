/// A kernel that can say how many bytes its last batch took on the wire (for logs and benchmarks).
public protocol BatchMeasuring {
    var lastBatchBytes: Int { get }
}
