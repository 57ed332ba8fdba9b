import Foundation
import Testing
@testable import Daemon

/// The policy watcher's lifetime: LeakSanitizer found every watcher leaked (with its inotify and
/// pipe descriptors) through the `Thread` it kept.
struct PolicyWatcherTests {
    @Test func aStoppedWatcherIsFreed() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zw-watch-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        weak var weakWatcher: PolicyWatcher?
        do {
            let watcher = try PolicyWatcher(directory: dir)
            weakWatcher = watcher
            watcher.start()
            watcher.stop()
        }
        for _ in 0..<250 where weakWatcher != nil { try await Task.sleep(for: .milliseconds(20)) }
        #expect(weakWatcher == nil, "the reader thread ended but the watcher is still alive")
    }

    /// The reload's reason names the policy files that changed, once each, not sed's or an
    /// editor's temporary files.
    @Test func reasonsNamePolicyFilesOnce() {
        #expect(PolicyWatcher.changedFiles(["sedff7SLx", "sedff7SLx", "zones.yaml", "zones.yaml", "rules.yml"]) == ["zones.yaml", "rules.yml"])
        #expect(PolicyWatcher.changedFiles([".zones.yaml.swp", "4913"]) == ["other files in the directory"])
        #expect(PolicyWatcher.changedFiles([]) == [])
    }
}
