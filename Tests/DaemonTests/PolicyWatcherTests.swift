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

    /// A release deployed by swapping a symbolic link above the policy directory, and a parent
    /// renamed away and back: no event reaches the watched directories, the path's identity does.
    @Test func aPathThatLeadsElsewhereIsNoticed() async throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("zw-watch-\(UUID())").path
        defer { try? fm.removeItem(atPath: root) }
        for release in ["rel1", "rel2"] { try fm.createDirectory(atPath: "\(root)/\(release)/pol", withIntermediateDirectories: true) }
        try fm.createSymbolicLink(atPath: "\(root)/cur", withDestinationPath: "\(root)/rel1")
        let watcher = try PolicyWatcher(directory: "\(root)/cur/pol")
        watcher.start()
        defer { watcher.stop() }
        let events = Events()
        let reader = Task { for await e in watcher.changes { await events.append(e) } }
        defer { reader.cancel() }
        var taken = 0
        func next() async -> String? {
            for _ in 0..<400 {
                if let e = await events.at(taken) { taken += 1; return e }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }
        // The deploy: a new link renamed over the old one, as `ln -sfn … && mv -T` does.
        try fm.createSymbolicLink(atPath: "\(root)/cur.new", withDestinationPath: "\(root)/rel2")
        #expect(rename("\(root)/cur.new", "\(root)/cur") == 0)
        #expect(await next() == "the policy path now leads to another directory")
        // The parent renamed away: gone; renamed back: there again.
        #expect(rename("\(root)/rel2", "\(root)/rel2.away") == 0)
        let gone = await next()
        #expect(gone == "the policy path no longer leads to a directory")
        #expect(rename("\(root)/rel2.away", "\(root)/rel2") == 0)
        #expect(await next() == "the policy path leads to a directory again")
    }

    /// The reload's reason names the policy files that changed, once each, not sed's or an
    /// editor's temporary files.
    @Test func reasonsNamePolicyFilesOnce() {
        #expect(PolicyWatcher.changedFiles(["sedff7SLx", "sedff7SLx", "zones.yaml", "zones.yaml", "rules.yml"]) == ["zones.yaml", "rules.yml"])
        #expect(PolicyWatcher.changedFiles([".zones.yaml.swp", "4913"]) == ["other files in the directory"])
        #expect(PolicyWatcher.changedFiles([]) == [])
    }
}

private actor Events {
    private var list: [String] = []
    func append(_ e: String) { list.append(e) }
    func at(_ i: Int) -> String? { i < list.count ? list[i] : nil }
}
