#if canImport(Glibc)
import Glibc
#endif

/// Local users by name or uid, through the system's user database (getpwnam_r, so NSS too).
public enum UserResolver {
    /// The uid of `user`: a decimal uid is taken as is; a name is looked up with getpwnam_r; nil if unknown.
    public static func uid(_ user: String) -> UInt32? {
        if let n = UInt32(user) { return n }
        var pwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var size = 1024
        while true {
            var buffer = [CChar](repeating: 0, count: size)
            let rc = getpwnam_r(user, &pwd, &buffer, size, &result)
            if rc == ERANGE && size < 1 << 20 { size *= 4; continue }
            guard rc == 0, let result else { return nil }
            return result.pointee.pw_uid
        }
    }
}
