import Foundation
import Testing
@testable import ZonePolicy

/// StrictModes over a fake file system: which owners and modes are refused, and how it says so.
@Suite struct StrictModesTests {
    /// A file system of `path → (uid, mode, directory)`; what it lacks cannot be examined.
    static func rules(_ entries: [String: FileOwnership], trusting: Set<UInt32> = [0],
                      links: [String: String] = [:]) -> StrictModes {
        StrictModes(trustedOwners: trusting, stat: { entries[$0] }, resolve: { links[$0] ?? $0 },
                    userName: { $0 == 0 ? "root" : $0 == 65534 ? "nobody" : nil })
    }
    static func dir(_ mode: UInt32, uid: UInt32 = 0) -> FileOwnership { FileOwnership(uid: uid, mode: mode, isDirectory: true) }
    static func file(_ mode: UInt32, uid: UInt32 = 0) -> FileOwnership { FileOwnership(uid: uid, mode: mode, isDirectory: false) }

    /// /, /etc, /etc/zonewall, /etc/zonewall/zones.yaml, all root's and 0755/0644.
    static let secure: [String: FileOwnership] = [
        "/": dir(0o755), "/etc": dir(0o755), "/etc/zonewall": dir(0o755), "/etc/zonewall/zones.yaml": file(0o644),
    ]

    func check(_ fs: [String: FileOwnership], trusting: Set<UInt32> = [0], links: [String: String] = [:]) -> [Diagnostic] {
        Self.rules(fs, trusting: trusting, links: links).check(directory: "/etc/zonewall", files: ["/etc/zonewall/zones.yaml"])
    }

    @Test func rootOwnedAndNotGroupOrOtherWritableIsAccepted() {
        #expect(check(Self.secure).isEmpty)
        var readOnly = Self.secure
        readOnly["/etc/zonewall/zones.yaml"] = Self.file(0o400)
        #expect(check(readOnly).isEmpty)
    }

    @Test func worldWritablePolicyDirectoryIsRefusedWithPathOwnerModeAndFix() {
        var fs = Self.secure
        fs["/etc/zonewall"] = Self.dir(0o777)
        let found = check(fs)
        #expect(found.count == 1)
        let d = found.first
        #expect(d?.location.path == "/etc/zonewall")
        #expect(d?.severity == .error)
        #expect(d?.message == "insecure permissions on policy directory: writable by its group and others (owner root (uid 0), mode 0777)")
        #expect(d?.hint?.contains("chmod go-w '/etc/zonewall'") == true)
        #expect(d?.description.hasPrefix("/etc/zonewall: error: insecure permissions") == true)
    }

    @Test func foreignOwnedFileIsRefusedWithChownHint() {
        var fs = Self.secure
        fs["/etc/zonewall/zones.yaml"] = Self.file(0o644, uid: 65534)
        let d = check(fs).first
        #expect(d?.location.path == "/etc/zonewall/zones.yaml")
        #expect(d?.message == "insecure permissions on policy file: owned by nobody (uid 65534), not root (owner nobody (uid 65534), mode 0644)")
        #expect(d?.hint?.contains("chown root '/etc/zonewall/zones.yaml'") == true)
        #expect(d?.hint?.contains("chmod") == false)
    }

    @Test func groupWritableFileIsRefused() {
        var fs = Self.secure
        fs["/etc/zonewall/zones.yaml"] = Self.file(0o664)
        #expect(check(fs).map(\.message) == ["insecure permissions on policy file: writable by its group (owner root (uid 0), mode 0664)"])
    }

    @Test func theDaemonsOwnUserIsTrusted() {
        var fs = Self.secure
        fs["/etc/zonewall/zones.yaml"] = Self.file(0o600, uid: 1000)
        #expect(check(fs, trusting: [0, 1000]).isEmpty)
        #expect(check(fs).count == 1)
    }

    @Test func everyParentUpToRootIsChecked() {
        var fs = Self.secure
        fs["/etc"] = Self.dir(0o775)
        fs["/"] = Self.dir(0o755, uid: 1000)
        let found = check(fs)
        #expect(found.map(\.location.path) == ["/etc", "/"])
        #expect(found.allSatisfy { $0.message.hasPrefix("insecure permissions on directory above the policy") })
    }

    @Test func aRootOwnedStickyParentLikeTmpIsAcceptedButNotAsThePolicyDirectory() {
        let fs: [String: FileOwnership] = [
            "/": Self.dir(0o755), "/tmp": Self.dir(0o1777), "/tmp/p": Self.dir(0o700), "/tmp/p/a.yaml": Self.file(0o644),
        ]
        #expect(Self.rules(fs).check(directory: "/tmp/p", files: ["/tmp/p/a.yaml"]).isEmpty)
        // Sticky but owned by someone else: that owner could replace our entries.
        var foreign = fs
        foreign["/tmp"] = Self.dir(0o1777, uid: 1000)
        #expect(Self.rules(foreign).check(directory: "/tmp/p", files: ["/tmp/p/a.yaml"]).map(\.location.path) == ["/tmp"])
        // Sticky does not make a world-writable policy directory safe: others can add policy files.
        var stickyPolicy = fs
        stickyPolicy["/tmp/p"] = Self.dir(0o1777)
        #expect(Self.rules(stickyPolicy).check(directory: "/tmp/p", files: ["/tmp/p/a.yaml"]).map(\.location.path) == ["/tmp/p"])
    }

    @Test func symlinkTargetsAndTheirParentsAreChecked() {
        // A ConfigMap-style link: /etc/zonewall/zones.yaml → /srv/data/zones.yaml, /srv/data writable by others.
        var fs = Self.secure
        fs["/srv"] = Self.dir(0o755)
        fs["/srv/data"] = Self.dir(0o777)
        fs["/srv/data/zones.yaml"] = Self.file(0o644)
        let found = check(fs, links: ["/etc/zonewall/zones.yaml": "/srv/data/zones.yaml"])
        #expect(found.map(\.location.path) == ["/srv/data"])
    }

    @Test func aPathThatCannotBeExaminedIsRefused() {
        var fs = Self.secure
        fs["/etc"] = nil
        #expect(check(fs).map(\.location.path) == ["/etc"])
    }

    @Test func eachPathIsReportedOnce() {
        var fs = Self.secure
        fs["/etc"] = Self.dir(0o777)
        fs["/etc/zonewall/a.yaml"] = Self.file(0o644)
        let found = Self.rules(fs).check(directory: "/etc/zonewall", files: ["/etc/zonewall/a.yaml", "/etc/zonewall/zones.yaml"])
        #expect(found.map(\.location.path) == ["/etc"])
    }

    @Test func relativeAndDottedPathsAreNormalized() {
        #expect(StrictModes.normalized("/a/./b/../c/") == "/a/c")
        #expect(StrictModes.parents(of: "/a/b/c") == ["/a/b", "/a", "/"])
        #expect(StrictModes.parents(of: "/") == [])
    }

    /// The real file system: a temporary directory made world-writable is refused by the loader
    /// before any file is read, and accepted once fixed.
    @Test func loaderRefusesInsecureDirectoryBeforeReadingIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-strict-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "zones: {a: {members: [192.0.2.1]}}\n".write(toFile: dir + "/a.yaml", atomically: false, encoding: .utf8)
        chmod(dir + "/a.yaml", 0o644)
        chmod(dir, 0o777)
        let refused = PolicyLoader.load(directory: dir, strictModes: .system)
        #expect(refused.policy == nil)
        #expect(refused.errors.map(\.location.path) == [dir])
        // Not checked without StrictModes (check, plan, explain, diff, test).
        #expect(PolicyLoader.load(directory: dir).policy != nil)
        chmod(dir, 0o755)
        let fixed = PolicyLoader.load(directory: dir, strictModes: .system)
        #expect(fixed.policy != nil, "\(fixed.diagnostics)")
    }

    /// The directories a state file is written in: a world-writable one is refused (others could
    /// replace what status shows), a root-owned sticky one (/tmp) is fine, a missing one is made.
    @Test func stateFileDirectories() {
        let fs: [String: FileOwnership] = [
            "/": Self.dir(0o755), "/tmp": Self.dir(0o1777), "/tmp/ww": Self.dir(0o777), "/tmp/ok": Self.dir(0o700),
            "/run": Self.dir(0o755),
        ]
        let rules = Self.rules(fs)
        let bad = rules.check(stateFile: "/tmp/ww/state.json").map(\.description)
        #expect(bad.count == 1)
        #expect(bad.first?.contains("/tmp/ww") == true && bad.first?.contains("directory above the state file: writable by its group and others") == true)
        #expect(rules.check(stateFile: "/tmp/ok/state.json").isEmpty)
        #expect(rules.check(stateFile: "/run/zonewall/state.json").isEmpty, "a directory not made yet is made 0700")
    }
}
