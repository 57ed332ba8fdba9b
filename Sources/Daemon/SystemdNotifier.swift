#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Speaks systemd's notify protocol (`sd_notify`): READY=1, RELOADING=1, STATUS=…, WATCHDOG=1.
///
/// It is a datagram to `$NOTIFY_SOCKET`; without that variable (not under systemd) every call
/// is a no-op. No libsystemd dependency for five lines of protocol.
public struct SystemdNotifier: Sendable {
    private let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        watchdogInterval = environment["WATCHDOG_USEC"].flatMap(UInt64.init).map { Duration.microseconds(Int64($0)) }
    }

    /// The watchdog period systemd expects pings within (`WatchdogSec`), if enabled.
    public let watchdogInterval: Duration?

    public var isEnabled: Bool { socketPath != nil }

    /// Sends `KEY=VALUE` lines.
    public func notify(_ fields: String...) {
        guard let path = socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in dst.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let message = Array(fields.joined(separator: "\n").utf8)
        _ = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
            }
        }
    }
}
