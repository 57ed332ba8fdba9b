import Foundation
import Membership
import Testing

/// `--etcd-cacert`, `--etcd-cert`, `--etcd-key`: every file is loaded and checked at startup.
@Suite(.serialized)
struct TLSFilesTests {
    /// A directory with a self-signed certificate and its key (openssl), and a file that is not PEM.
    func files() throws -> String {
        let dir = NSTemporaryDirectory() + "zw-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try selfSigned(dir, key: "key.pem", cert: "cert.pem")
        try "this is not a certificate\n".write(toFile: dir + "/garbage.txt", atomically: true, encoding: .utf8)
        return dir
    }

    /// A self-signed certificate and its key in `dir` (openssl; `newkey` as `openssl req -newkey`).
    func selfSigned(_ dir: String, key: String, cert: String, newkey: [String] = ["-newkey", "rsa:2048"]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["req", "-x509"] + newkey + ["-nodes", "-keyout", dir + "/" + key, "-out", dir + "/" + cert,
                                                   "-days", "1", "-subj", "/CN=zonewall-test"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "openssl req")
    }

    /// A client key that is not the certificate's (another RSA key, or an EC key for an RSA
    /// certificate) is refused naming both files; it passed before, and every handshake failed.
    @Test func aKeyThatIsNotTheCertificatesIsRefused() throws {
        let dir = try files()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try selfSigned(dir, key: "other-key.pem", cert: "other-cert.pem")
        try selfSigned(dir, key: "ec-key.pem", cert: "ec-cert.pem", newkey: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        let e = ["127.0.0.1:1"]
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/other-cert.pem", key: dir + "/other-key.pem")) == nil)
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/ec-cert.pem", key: dir + "/ec-key.pem")) == nil)
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/cert.pem", certificate: dir + "/cert.pem", key: dir + "/other-key.pem"))
                == "etcd client key \(dir)/other-key.pem: does not match the client certificate \(dir)/cert.pem (the key's public key is not the certificate's)")
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/cert.pem", key: dir + "/ec-key.pem"))
                == "etcd client key \(dir)/ec-key.pem: does not match the client certificate \(dir)/cert.pem (the key's public key is not the certificate's)")
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/ec-cert.pem", key: dir + "/key.pem"))?
                    .hasPrefix("etcd client key \(dir)/key.pem: does not match the client certificate \(dir)/ec-cert.pem") == true)

        let o = try zonewall(["member", "list", "--etcd-endpoints", "127.0.0.1:1", "--etcd-cacert", dir + "/cert.pem",
                              "--etcd-cert", dir + "/cert.pem", "--etcd-key", dir + "/other-key.pem"], seconds: 10)
        #expect(o.status == 1, "\(o)")
        #expect(o.stderr.contains("etcd client key \(dir)/other-key.pem: does not match the client certificate \(dir)/cert.pem"), "\(o)")
    }

    /// A path that cannot be read says why in plain words (it said "NSCocoaErrorDomain error 256").
    @Test func anUnreadablePathSaysWhy() throws {
        let dir = try files()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let e = ["127.0.0.1:1"]
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir)) == "etcd CA certificate \(dir): cannot read it: Is a directory")
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/cert.pem", key: dir))
                == "etcd client key \(dir): cannot read it: Is a directory")
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/missing.pem"))
                == "etcd CA certificate \(dir)/missing.pem: cannot read it: No such file or directory")
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/garbage.txt/x"))
                == "etcd CA certificate \(dir)/garbage.txt/x: cannot read it: Not a directory")
        // A FIFO with no writer: reading it would wait for ever. It is refused at once.
        #expect(mkfifo(dir + "/fifo.pem", 0o600) == 0)
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/fifo.pem"))
                == "etcd CA certificate \(dir)/fifo.pem: cannot read it: not a regular file")
        let o = try zonewall(["member", "list", "--etcd-endpoints", "127.0.0.1:1", "--etcd-cacert", dir], seconds: 10)
        #expect(o.status == 1, "\(o)")
        #expect(o.stderr.contains("etcd CA certificate \(dir): cannot read it: Is a directory"), "\(o)")
        #expect(!o.stderr.contains("NSCocoaErrorDomain"), "\(o)")
    }

    func reason(_ c: EtcdConfiguration) -> String? {
        do { _ = try c.tlsConfiguration(); return nil } catch { return "\(error)" }
    }

    @Test func eachFileIsCheckedAndNamed() throws {
        let dir = try files()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let e = ["127.0.0.1:1"]
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/cert.pem", certificate: dir + "/cert.pem", key: dir + "/key.pem")) == nil)
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/garbage.txt"))
                == "etcd CA certificate \(dir)/garbage.txt: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/key.pem"))?.hasPrefix("etcd CA certificate \(dir)/key.pem: no PEM certificate") == true)
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/garbage.txt", key: dir + "/key.pem"))?
                    .hasPrefix("etcd client certificate \(dir)/garbage.txt: no PEM certificate") == true)
        #expect(reason(EtcdConfiguration(endpoints: e, certificate: dir + "/cert.pem", key: dir + "/cert.pem"))?
                    .hasPrefix("etcd client key \(dir)/cert.pem: not a PEM private key") == true)
        #expect(reason(EtcdConfiguration(endpoints: e, caCertificate: dir + "/missing.pem"))?
                    .hasPrefix("etcd CA certificate \(dir)/missing.pem: cannot read it") == true)
        // The client loads the same way: a bad CA is refused when it is made, not at each handshake.
        #expect(throws: EtcdError.self) { _ = try EtcdClient(EtcdConfiguration(endpoints: e, caCertificate: dir + "/garbage.txt")) }
    }

    @Test func runAndMemberCommandsExit1NamingTheFile() throws {
        let dir = try files()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let etcd = ["--etcd-endpoints", "127.0.0.1:1"]
        let commands: [[String]] = [
            ["member", "list"] + etcd + ["--etcd-cacert", dir + "/garbage.txt"],
            ["member", "add"] + etcd + ["--zone", "web", "--address", "198.51.100.7", "--etcd-cacert", dir + "/garbage.txt"],
            ["run", "--policies", dir, "--netns", "zw-hB-never-created"] + etcd + ["--etcd-cacert", dir + "/garbage.txt"],
        ]
        for args in commands {
            let o = try zonewall(args, seconds: 10)
            #expect(o.status == 1, "\(args): \(o)")
            #expect(o.stderr.contains("etcd CA certificate \(dir)/garbage.txt: no PEM certificate in it"), "\(args): \(o)")
        }
        let key = try zonewall(["member", "list"] + etcd + ["--etcd-cert", dir + "/cert.pem", "--etcd-key", dir + "/garbage.txt"], seconds: 10)
        #expect(key.status == 1 && key.stderr.contains("etcd client key \(dir)/garbage.txt: not a PEM private key"), "\(key)")
        // Good files pass validation: the failure is then etcd's absence (exit 2).
        let good = try zonewall(["member", "list"] + etcd + ["--etcd-cacert", dir + "/cert.pem", "--etcd-cert", dir + "/cert.pem",
                                                           "--etcd-key", dir + "/key.pem"], seconds: 20)
        #expect(good.status == 2, "\(good)")
        // TLS options with an http:// endpoint would speak plaintext to it: refused, at start.
        for endpoints in ["http://127.0.0.1:1", "https://127.0.0.1:1,http://127.0.0.1:2"] {
            let plain = try zonewall(["member", "list", "--etcd-endpoints", endpoints, "--etcd-cacert", dir + "/cert.pem"], seconds: 10)
            #expect(plain.status == 1 && plain.stderr.contains("is plaintext (http://) but TLS is asked for"), "\(plain)")
        }
        #expect(throws: EtcdError.self) {
            _ = try EtcdConfiguration(endpoints: ["https://127.0.0.1:1", "http://127.0.0.1:2"]).tlsConfiguration()
        }
    }
}
