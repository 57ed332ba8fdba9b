import ArgumentParser
import Foundation
import PolicyReview
import ZonePolicy

/// `zonewall report`: one self-contained HTML page to review a policy (and a change to it).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML report: reachability matrix, zones, and the diff against --base.")

    @OptionGroup var options: PolicyOptions

    @Option(help: "The HTML file to write; - for standard output.")
    var html: String

    @Option(help: "Also show the changes against this policy: a directory or a git revision.")
    var base: String?

    func run() throws {
        let policy: Policy
        var diff: PolicyDiff?
        if let base {
            let (old, new) = try loadBoth(base: base, policies: options.policies)
            policy = new
            diff = PolicyDiff(from: old, to: new)
        } else {
            policy = try options.loadOrExit(printWarnings: false).0
        }
        let page = HTMLReport(policy: policy, diff: diff, baseName: base).html
        if html == "-" {
            try StandardOutput.write(page)
            return
        }
        if let code = Self.writeAtomically(page, to: html) {
            printError("zonewall: cannot write the report to \(html): \(String(cString: strerror(code)))")
            throw ExitCode(1)
        }
        try StandardOutput.write("wrote \(html)" + (diff.map { ": \($0.summary)" } ?? "") + "\n")
    }

    /// Writes `text` to a new file beside `path` and renames it over `path`, so a reader never
    /// sees half a report; nil on success, else the errno of the step that failed (EISDIR for a
    /// directory, ENOENT for a missing parent directory). Foundation's atomic write reports all
    /// of these as an opaque "error 512".
    static func writeAtomically(_ text: String, to path: String) -> Int32? {
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return EISDIR }
        let dir = (path as NSString).deletingLastPathComponent
        var template = Array(((dir.isEmpty ? "." : dir) + "/.zonewall-report.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return errno }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var failure: Int32?
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { failure = errno; return }
                off += n
            }
        }
        // A page for people to open: readable by others like any file written with the usual umask.
        if failure == nil && fchmod(fd, 0o644) != 0 { failure = errno }
        if close(fd) != 0 && failure == nil { failure = errno }
        if failure == nil && rename(temporary, path) != 0 { failure = errno }
        if failure != nil { unlink(temporary) }
        return failure
    }
}
