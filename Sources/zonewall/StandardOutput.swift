import ArgumentParser
// For C's `stdout` (a global var to Swift 6): fflush and ferror must see print()'s own stream.
@preconcurrency import Foundation
@preconcurrency import Glibc

/// Standard output with every write checked: output that cannot be written is an error the
/// user sees, never a crash (`FileHandle.write` traps) or a silent exit 0 (`print` buffers).
///
/// A reader that went away (`EPIPE`, with SIGPIPE ignored) ends the command quietly with the
/// status a SIGPIPE death gives, 141; any other failure prints
/// `zonewall: writing the output: <strerror>` and exits 1.
enum StandardOutput {
    /// The exit status of a command whose reader closed the pipe: 128 + SIGPIPE, as a shell
    /// reports a process SIGPIPE ended.
    static let closedPipeStatus: Int32 = 128 + SIGPIPE

    private static let lock = NSLock()
    /// The status of the first failed write: later writes and the final flush end with it
    /// without a second message.
    nonisolated(unsafe) private static var failedStatus: Int32?

    /// Writes `text` whole, after whatever `print` buffered, with write(2) (no stdio buffer: a
    /// pipe or a file sees it at once).
    static func write(_ text: String) throws {
        if let status = lock.withLock({ failedStatus }) { throw ExitCode(status) }
        try flush()
        if let failure = writeAll(text, to: STDOUT_FILENO) { try fail(failure) }
    }

    /// Flushes what `print` buffered and checks that nothing written through stdio was lost.
    static func flush() throws {
        let stream = stdout
        errno = 0
        let flushed = fflush(stream)
        let code = errno
        guard flushed != 0 || ferror(stream) != 0 else { return }
        clearerr(stream)
        // An earlier implicit flush may have failed and set the error flag; its errno is gone.
        try fail(code != 0 ? code : EIO)
    }

    /// Reports a failed write and ends the command (see the type's documentation).
    static func fail(_ code: Int32) throws -> Never {
        let status = code == EPIPE ? closedPipeStatus : 1
        let first = lock.withLock {
            defer { failedStatus = failedStatus ?? status }
            return failedStatus == nil
        }
        if first && code != EPIPE { printError("zonewall: writing the output: \(String(cString: strerror(code)))") }
        throw ExitCode(lock.withLock { failedStatus! })
    }

    /// The exit status to end with: the command's `status`, unless some output was not written.
    static func finish(_ status: Int32) -> Int32 {
        if let failed = lock.withLock({ failedStatus }) { return failed }
        do {
            try flush()
            return status
        } catch {
            return (error as? ExitCode)?.rawValue ?? 1
        }
    }
}
