import Glibc

/// Works out which process committed a transaction, for `KernelEvent.changed(pid:)`.
///
/// The kernel reports the committing thread's id in the initial pid namespace, which equals
/// `getpid()` only for a single-threaded process's main thread. So:
/// 1. a batch sent on `ownPortID` (this process's `NetlinkKernel` socket) is ours: `getpid()`;
/// 2. in the initial pid namespace, a thread id becomes its process id (`Tgid:` in
///    `/proc/TID/status`; our own threads are in `/proc/self/task`);
/// 3. otherwise (a process gone already, or a container whose pid numbers differ from the
///    kernel's) the thread id is reported as is. It never matches `getpid()` by accident in
///    a container, since step 2 is skipped there.
struct Committer {
    let ownPortID: UInt32?
    let ownPID = UInt32(getpid())
    /// Whether /proc numbers processes as the kernel's report does.
    let inInitialPidNamespace: Bool = {
        var st = stat()
        // PROC_PID_INIT_INO: the fixed inode of the initial pid namespace.
        return stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == 0xEFFF_FFFC
    }()

    func pid(of c: Commit) -> UInt32 {
        if let ownPortID, c.portID == ownPortID { return ownPID }
        guard inInitialPidNamespace, c.threadID != 0, c.threadID != ownPID else { return c.threadID }
        if access("/proc/self/task/\(c.threadID)", F_OK) == 0 { return ownPID }
        return Self.threadGroup(of: c.threadID) ?? c.threadID
    }

    /// The `Tgid:` line of `/proc/TID/status`.
    static func threadGroup(of tid: UInt32) -> UInt32? {
        guard let f = fopen("/proc/\(tid)/status", "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("Tgid:") {
                return UInt32(String(s.dropFirst(5).filter(\.isNumber)))
            }
        }
        return nil
    }
}
