import ArgumentParser
import Glibc

/// `zonewall-lab serve`: the namespace lab's listener.
///
/// One process answers every probed port of a lab host, TCP and UDP, IPv4 and IPv6 (dual-stack
/// sockets): a TCP connection gets `zw-ok` and is closed, a UDP datagram gets `zw-ok` back to
/// its sender. Reading the answer proves the reply direction of the flow passes too. socat's
/// forking UDP servers lose datagrams when probes arrive in parallel; this does not.
struct LabServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Answer 'zw-ok' on the given TCP and UDP ports (used by scripts/lab)."
    )

    @Option(parsing: .upToNextOption, help: "TCP ports.") var tcp: [UInt16] = []
    @Option(parsing: .upToNextOption, help: "UDP ports.") var udp: [UInt16] = []

    func run() throws {
        var fds: [pollfd] = []
        var isTCP: [Bool] = []
        for (ports, type) in [(tcp, SOCK_STREAM), (udp, SOCK_DGRAM)] {
            for port in ports {
                fds.append(pollfd(fd: try Self.bind(port: port, type: Int32(type.rawValue)), events: Int16(POLLIN), revents: 0))
                isTCP.append(type == SOCK_STREAM)
            }
        }
        let answer = Array("zw-ok\n".utf8)
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 else {
                if errno == EINTR { continue }
                throw ExitCode(2)
            }
            for i in fds.indices where fds[i].revents != 0 {
                fds[i].revents = 0
                if isTCP[i] {
                    let c = accept(fds[i].fd, nil, nil)
                    guard c >= 0 else { continue }
                    _ = answer.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    close(c)
                } else {
                    var peer = sockaddr_storage()
                    var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                    let n = withUnsafeMutablePointer(to: &peer) { p in
                        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fds[i].fd, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &len) }
                    }
                    guard n >= 0 else { continue }
                    _ = withUnsafePointer(to: &peer) { p in
                        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                            answer.withUnsafeBytes { sendto(fds[i].fd, $0.baseAddress, $0.count, 0, sa, len) }
                        }
                    }
                }
            }
        }
    }

    /// A dual-stack socket bound to `[::]:port`.
    static func bind(port: UInt16, type: Int32) throws -> Int32 {
        let fd = socket(AF_INET6, type | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket: \(String(cString: strerror(errno)))") }
        var zero: Int32 = 0, one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in6()
        addr.sin6_family = sa_family_t(AF_INET6)
        addr.sin6_port = port.bigEndian
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard rc == 0 else { throw ValidationError("bind port \(port): \(String(cString: strerror(errno)))") }
        if type == Int32(SOCK_STREAM.rawValue) { listen(fd, 512) }
        // A connection reset before accept must not block the loop.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }
}
