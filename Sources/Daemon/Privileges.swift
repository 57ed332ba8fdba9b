import CPrivileges
import Foundation

/// The daemon's capabilities after start: `CAP_NET_ADMIN` and nothing else.
public enum Privileges {
    /// `CAP_NET_ADMIN`'s bit in a capability set.
    public static let netAdmin: UInt64 = 1 << 12

    /// Why the capabilities could not be dropped.
    public struct DropFailed: Error, CustomStringConvertible {
        /// The errno value `zw_keep_only_net_admin` returned.
        public var errno: Int32
        public var description: String { "dropping capabilities: \(String(cString: strerror(errno)))" }
    }

    /// Keeps only `CAP_NET_ADMIN` (if permitted) in every thread's permitted and effective sets,
    /// empties the inheritable, ambient and bounding sets of the rest, and sets
    /// `PR_SET_NO_NEW_PRIVS` (`zw_keep_only_net_admin`, capset(2) broadcast to all threads).
    ///
    /// Call it once every socket that needs more is open: entering a network namespace
    /// (`setns`) needs `CAP_SYS_ADMIN`, which is gone afterwards.
    public static func keepOnlyNetAdmin() throws(DropFailed) {
        let rc = zw_keep_only_net_admin()
        if rc != 0 { throw DropFailed(errno: rc) }
    }

    /// The effective and permitted sets of one thread of this process (0: the caller).
    public static func capabilities(ofThread tid: Int32 = 0) -> (effective: UInt64, permitted: UInt64)? {
        var e: UInt64 = 0, p: UInt64 = 0
        return zw_thread_capabilities(tid, &e, &p) == 0 ? (e, p) : nil
    }
}
