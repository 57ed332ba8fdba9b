import Foundation
import HostIdentity
import Revocation
import SocketDiag
import Testing
import ZonePolicy

private let isRoot = getuid() == 0

/// One `SOCK_DIAG_BY_FAMILY` reply: a netlink header, an `inet_diag_msg`, then `attributes`.
private func message(family: UInt8 = 2, sport: UInt16, dport: UInt16, src: [UInt8], dst: [UInt8], uid: UInt32,
                     attributes: [UInt8] = []) -> [UInt8] {
    var body = [UInt8](repeating: 0, count: 72)
    body[0] = family
    body[4] = UInt8(sport >> 8); body[5] = UInt8(sport & 0xff)
    body[6] = UInt8(dport >> 8); body[7] = UInt8(dport & 0xff)
    body.replaceSubrange(8..<(8 + src.count), with: src)
    body.replaceSubrange(24..<(24 + dst.count), with: dst)
    withUnsafeBytes(of: uid.littleEndian) { body.replaceSubrange(64..<68, with: $0) }
    body += attributes
    let length = UInt32(16 + body.count)
    var out = [UInt8]()
    withUnsafeBytes(of: length.littleEndian) { out += $0 }
    out += [20, 0, 2, 0] + [UInt8](repeating: 0, count: 8)  // SOCK_DIAG_BY_FAMILY, NLM_F_MULTI
    return out + body
}

private func cgroupAttribute(_ id: UInt64) -> [UInt8] {
    var a: [UInt8] = [12, 0, 21, 0]
    withUnsafeBytes(of: id.littleEndian) { a += $0 }
    return a
}

@Suite("sock_diag decoding")
struct SockDiagDecodingTests {
    @Test func decodesAddressesPortsOwnerAndCgroup() throws {
        let bytes = message(sport: 5432, dport: 40_000, src: [192, 0, 2, 1], dst: [198, 51, 100, 7], uid: 4242,
                            attributes: cgroupAttribute(0x1234_5678_9abc))
            + message(family: 10, sport: 443, dport: 0, src: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1],
                      dst: [UInt8](repeating: 0, count: 16), uid: 0)
        let sockets = try decodeSockDiagMessages(bytes, proto: 6)
        #expect(sockets == [
            LocalSocket(family: .ipv4, proto: 6, localAddress: 0xC000_0201, localPort: 5432, remoteAddress: 0xC633_6407,
                        remotePort: 40_000, uid: 4242, cgroupID: 0x1234_5678_9abc),
            LocalSocket(family: .ipv6, proto: 6, localAddress: UInt128(0x2001_0db8) << 96 | 1, localPort: 443, uid: 0),
        ])
    }

    /// The real kernel dump the fuzz seeds hold (Tests/Fuzz/capture-kernel-seeds.sh): eight
    /// sockets of a throwaway namespace, decoded field by field.
    @Test func aRealKernelDumpDecodes() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/Corpus/sockdiag/kernel-dump").standardizedFileURL
        let seed = try [UInt8](Data(contentsOf: url))
        let sockets = try decodeSockDiagMessages(Array(seed.dropFirst()), proto: 6)  // the first byte is the fuzz target's
        #expect(sockets.count == 8)
        #expect(sockets.allSatisfy { $0.cgroupID != nil && $0.cgroupID != 0 })
        let loopback: UInt128 = 0x7f00_0001
        let v4 = sockets.filter { $0.family == .ipv4 }
        #expect(v4.contains { $0.localAddress == loopback && $0.localPort == 7000 && $0.remotePort == 0 })  // the listener
        #expect(v4.contains { $0.localPort == 5353 && $0.localAddress == 0 })                             // UDP on every address
        // The dual-stack listener and its IPv4 peer, seen through IPv4-mapped addresses; not V6ONLY.
        let dual = try #require(sockets.first { $0.family == .ipv6 && $0.localPort == 7001 && $0.remotePort == 0 })
        #expect(dual.localAddress == 0 && dual.v6Only == false)
        let mapped = try #require(sockets.first { $0.family == .ipv6 && $0.localPort == 7001 && $0.remotePort != 0 })
        #expect(mapped.localAddress == 0xffff_7f00_0001 && mapped.remoteAddress == 0xffff_7f00_0001)
        #expect(SocketIndex(sockets).socket(family: .ipv4, proto: 6, local: loopback, localPort: 7001,
                                            remote: loopback, remotePort: mapped.remotePort) == mapped)
    }

    @Test func aV6OnlySocketIsNoIPv4Socket() throws {
        let any6 = [UInt8](repeating: 0, count: 16)
        let bytes = message(family: 10, sport: 53, dport: 0, src: any6, dst: any6, uid: 0, attributes: [5, 0, 11, 0, 1, 0, 0, 0])
        let sockets = try decodeSockDiagMessages(bytes, proto: 17)
        #expect(sockets.first?.v6Only == true)
        #expect(SocketIndex(sockets).socket(family: .ipv4, proto: 17, local: 0xC000_0201, localPort: 53, remote: 1, remotePort: 9) == nil)
        #expect(SocketIndex(sockets).socket(family: .ipv6, proto: 17, local: 1, localPort: 53, remote: 2, remotePort: 9) != nil)
    }

    @Test func theProtocolAttributeWins() throws {
        let bytes = message(sport: 53, dport: 0, src: [192, 0, 2, 1], dst: [0, 0, 0, 0], uid: 0, attributes: [5, 0, 10, 0, 17, 0, 0, 0])
        #expect(try decodeSockDiagMessages(bytes, proto: 6).map(\.proto) == [17])
    }

    @Test func otherMessagesAndFamiliesAreSkipped() throws {
        var done = [UInt8](repeating: 0, count: 20)
        done[0] = 20; done[4] = 3  // NLMSG_DONE
        let unix = message(family: 1, sport: 0, dport: 0, src: [], dst: [], uid: 0)
        #expect(try decodeSockDiagMessages(unix + done, proto: 6).isEmpty)
    }

    @Test func badInputIsATypedErrorNamingIt() {
        let good = message(sport: 1, dport: 2, src: [192, 0, 2, 1], dst: [192, 0, 2, 2], uid: 0, attributes: cgroupAttribute(7))
        do {
            _ = try decodeSockDiagMessages(Array(good.dropLast()), proto: 6)
            Issue.record("a truncated message decoded")
        } catch {
            #expect(error == SockDiagDecodeError(offset: 0, what: "netlink message header",
                                                 problem: "length \(good.count), but \(good.count - 1) bytes remain"))
        }
        // Every truncation and a short cgroup attribute: an error, never a trap.
        for cut in 1..<good.count {
            #expect(throws: SockDiagDecodeError.self) { try decodeSockDiagMessages(Array(good.prefix(cut)), proto: 6) }
        }
        var short = message(sport: 1, dport: 2, src: [192, 0, 2, 1], dst: [192, 0, 2, 2], uid: 0, attributes: [8, 0, 21, 0, 1, 2, 3, 4])
        do {
            _ = try decodeSockDiagMessages(short, proto: 6)
            Issue.record("a 4-byte cgroup id decoded")
        } catch {
            #expect(error.what == "attribute INET_DIAG_CGROUP_ID")
            #expect(error.problem == "4 bytes, expected 8")
        }
        short = Array(message(sport: 1, dport: 2, src: [192, 0, 2, 1], dst: [192, 0, 2, 2], uid: 0).prefix(16 + 40))
        short[0] = 56
        do {
            _ = try decodeSockDiagMessages(short, proto: 6)
            Issue.record("a 40-byte inet_diag_msg decoded")
        } catch {
            #expect(error.description == "decoding the sock_diag message at byte 0: inet_diag_msg: 40 bytes, expected 72")
        }
    }
}

/// sock_diag for real: processes in cgroups of the test's own, with sockets in a network
/// namespace of the test's own.
@Suite("NetlinkSockets in network namespaces", .serialized)
struct NetlinkSocketsTests {
    static func sh(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.executableLoad) }
    }

    /// Starts `script` (Python) in cgroup `cgroup` inside namespace `ns`, optionally as `uid`;
    /// returns once it printed "ready".
    static func start(_ script: String, cgroup: String, ns: String, uid: UInt32? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        let user = uid.map { ["setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups"] } ?? []
        p.arguments = ["-c", #"echo $$ > "$0/cgroup.procs" && exec "$@""#, cgroup,
                       "nsenter", "--net=/run/netns/\(ns)"] + user + ["/usr/bin/python3", "-u", "-c", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        try out.fileHandleForWriting.close()
        // Up to 10 s for "ready"; a helper that fails closes the pipe, and the read ends.
        var ready = pollfd(fd: out.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)
        let line = poll(&ready, 1, 10_000) > 0 ? out.fileHandleForReading.availableData : Data()
        try #require(String(decoding: line, as: UTF8.self).hasPrefix("ready"), "helper process did not start")
        return p
    }

    @Test(.enabled(if: isRoot && CgroupMount.current() != nil, "needs root (network namespaces, cgroups)"))
    func socketsCarryTheirOwnersAndCgroupPaths() throws {
        let root = CgroupMount.current()!
        let tag = "zw-sd-\(UInt32.random(in: 0...UInt32.max))"
        let ns = tag
        try Self.sh(["ip", "netns", "add", ns])
        try Self.sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        let a = "\(root)/\(tag)/a.service", b = "\(root)/\(tag)/b.service"
        try FileManager.default.createDirectory(atPath: a, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
        var processes: [Process] = []
        defer {
            for p in processes { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            for d in [a, b, "\(root)/\(tag)"] { rmdir(d) }
            try? Self.sh(["ip", "netns", "delete", ns])
        }
        // a.service: a TCP listener on 127.0.0.1:7000 (and the socket it accepts), a UDP socket
        // on 5353, a dual-stack TCP listener on [::]:7001.
        processes.append(try Self.start("""
            import socket, time
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("127.0.0.1", 7000)); l.listen()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
            s6 = socket.socket(socket.AF_INET6); s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s6.bind(("::", 7001)); s6.listen()
            print("ready", flush=True)
            c, _ = l.accept()
            time.sleep(60)
            """, cgroup: a, ns: ns))
        // b.service, as uid 4242: a client connected to the listener.
        processes.append(try Self.start("""
            import socket, time
            c = socket.create_connection(("127.0.0.1", 7000), source_address=("127.0.0.1", 41000))
            print("ready", flush=True)
            time.sleep(60)
            """, cgroup: b, ns: ns, uid: 4242))
        Thread.sleep(forTimeInterval: 0.2)
        let table = try NetlinkSockets(namespace: ns, cgroupRoot: root)
        let sockets = try table.sockets()
        let loopback: UInt128 = 0x7f00_0001
        let client = sockets.first { $0.proto == 6 && $0.localPort == 41000 }
        #expect(client?.uid == 4242)
        #expect(client?.cgroupPath == "/\(tag)/b.service")
        #expect(client?.remoteAddress == loopback)
        #expect(client?.remotePort == 7000)
        let accepted = sockets.first { $0.proto == 6 && $0.localPort == 7000 && $0.remotePort == 41000 }
        #expect(accepted?.uid == 0)
        #expect(accepted?.cgroupPath == "/\(tag)/a.service")
        #expect(accepted?.cgroupID == UInt64(try FileManager.default.attributesOfItem(atPath: a)[.systemFileNumber] as! UInt64))
        let listener = sockets.first { $0.proto == 6 && $0.localPort == 7000 && $0.remotePort == 0 }
        #expect(listener?.localAddress == loopback)
        #expect(listener?.cgroupPath == "/\(tag)/a.service")
        #expect(sockets.contains { $0.proto == 17 && $0.localPort == 5353 && $0.family == .ipv4 && $0.cgroupPath == "/\(tag)/a.service" })
        #expect(sockets.contains { $0.proto == 6 && $0.localPort == 7001 && $0.family == .ipv6 && $0.cgroupPath == "/\(tag)/a.service" })
        // Only this namespace's sockets: nothing of the host's.
        #expect(sockets.allSatisfy { [7000, 7001, 5353, 41000].contains($0.localPort) }, "\(sockets)")

        // The index finds each end of the flow as revocation looks for it.
        let index = SocketIndex(sockets)
        let flow = ConntrackEntry(family: .ipv4, proto: 6, source: loopback, destination: loopback, sourcePort: 41000, destinationPort: 7000)
        #expect(index.sender(of: flow)?.cgroupPath == "/\(tag)/b.service")
        #expect(index.receiver(of: flow)?.cgroupPath == "/\(tag)/a.service")
        // A datagram to the UDP socket bound to every address, and an IPv4 flow to the dual-stack listener.
        let dns = ConntrackEntry(family: .ipv4, proto: 17, source: 0xC000_0205, destination: 0xC000_0201, sourcePort: 999, destinationPort: 5353)
        #expect(index.receiver(of: dns)?.localPort == 5353)
        let mapped = ConntrackEntry(family: .ipv4, proto: 6, source: 0xC000_0205, destination: 0xC000_0201, sourcePort: 999, destinationPort: 7001)
        #expect(index.receiver(of: mapped)?.family == .ipv6)
    }
}
