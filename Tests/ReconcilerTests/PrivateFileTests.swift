import Foundation
import Testing
import ZonePolicy
@testable import Reconciler

/// The daemon's files are its owner's alone: 0600 in a 0700 directory, whatever the umask, with
/// no temporary file left behind; a confirmation window's files too.
struct PrivateFileTests {
    static func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o777 : 0
    }

    @Test func modesHoldWhateverTheUmask() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("zw-private-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let old = umask(0o022)
        defer { umask(old) }
        let path = root + "/state/s.json"
        try PrivateFile.write(Data("one".utf8), to: path)
        #expect(Self.mode(root + "/state") == 0o700)
        #expect(Self.mode(path) == 0o600)
        // An older file of another mode becomes 0600 when written again.
        chmod(path, 0o644)
        try PrivateFile.write(Data("two".utf8), to: path)
        #expect(Self.mode(path) == 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/state") == ["s.json"], "no temporary file is left")

        let store = ConfirmationStore(netns: "zw-test", policyDirectory: "/p", directory: root + "/confirm")
        try store.begin(PendingConfirmation(owner: .apply, pid: getpid(), deadline: Date(), netns: "zw-test", policyDirectory: "/p"))
        store.record("confirmed")
        #expect(Self.mode(root + "/confirm") == 0o700)
        #expect(Self.mode(store.pendingPath) == 0o600 && Self.mode(store.outcomePath) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/confirm").sorted()
                == [store.outcomePath, store.pendingPath].map { ($0 as NSString).lastPathComponent }.sorted())
    }
}
