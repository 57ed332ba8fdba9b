import CNetfilter
import Glibc

/// Runs `body(0)`, …, `body(count - 1)` at the same time and returns when all have returned:
/// index 0 runs on the calling thread, every other index on a thread of its own.
///
/// If a thread cannot be started, its index runs on the calling thread after index 0, so every
/// index runs exactly once whatever happens; callers that share work dynamically between the
/// indices (see `NetlinkKernel.readElements`) then simply run with fewer threads.
func runConcurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Job: Sendable {
        let index: Int
        let body: @Sendable (Int) -> Void
        init(index: Int, body: @escaping @Sendable (Int) -> Void) {
            self.index = index
            self.body = body
        }
    }
    var threads: [pthread_t] = []
    var unstarted: [Int] = []
    for index in 1..<max(count, 1) {
        let context = Unmanaged.passRetained(Job(index: index, body: body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            let job = Unmanaged<Job>.fromOpaque(context!).takeRetainedValue()
            job.body(job.index)
            return nil
        }, context)
        if rc == 0 {
            threads.append(thread)
        } else {
            Unmanaged<Job>.fromOpaque(context).release()
            unstarted.append(index)
        }
    }
    if count > 0 { body(0) }
    for index in unstarted { body(index) }
    for thread in threads { pthread_join(thread, nil) }
}

/// How many processors this thread may run on (its `sched_getaffinity` mask, as `nproc`
/// counts them), at least 1; the online processors if the mask cannot be read.
var usableProcessorCount: Int {
    var mask = cpu_set_t()
    if sched_getaffinity(0, MemoryLayout<cpu_set_t>.size, &mask) == 0 {
        let n = withUnsafeBytes(of: &mask) { $0.reduce(0) { $0 + $1.nonzeroBitCount } }
        if n > 0 { return n }
    }
    return max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
}
