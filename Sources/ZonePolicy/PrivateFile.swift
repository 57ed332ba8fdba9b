import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Files only their owner reads (the daemon's state, the member cache, confirmation windows,
/// flow summaries): written whole under a temporary name and renamed, so a reader never sees
/// half of one, with mode 0600 whatever the umask, in a directory created 0700 when missing.
/// Not `Data.write(options: .atomic)`: its temporary file takes the umask's mode, and a failed
/// write can leave it behind.
public enum PrivateFile {
    public static func write(_ data: Data, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        // A name of its own (mkstemp, mode 0600): two writers of one file at once each rename a whole file,
        // instead of one renaming the other's temporary file away ("No such file").
        var template = Array((path + ".tmp.XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            let e = errno
            throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO, userInfo: [NSFilePathErrorKey: path])
        }
        let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var failure: Int32 = fchmod(fd, 0o600) == 0 ? 0 : errno  // an older file of ours may have another mode
        if failure == 0 {
            failure = data.withUnsafeBytes { raw -> Int32 in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 { if errno == EINTR { continue }; return errno }
                    offset += n
                }
                return 0
            }
        }
        close(fd)
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw POSIXError(POSIXErrorCode(rawValue: failure) ?? .EIO, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
