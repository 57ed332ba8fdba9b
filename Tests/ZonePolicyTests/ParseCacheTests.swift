import Foundation
import Testing
@testable import ZonePolicy

struct ParseCacheTests {
    @Test func reparsesOnlyChangedFilesAndGivesTheSamePolicy() throws {
        let dir = NSTemporaryDirectory() + "zw-cache-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "zones:\n  web: {members: [192.0.2.0/28]}\n".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try "zones:\n  db: {members: [203.0.113.5]}\nallow:\n  - {from: web, to: db, ports: [tcp/5432]}\n"
            .write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        let cache = ParseCache()
        let first = PolicyLoader.load(directory: dir, cache: cache)
        #expect(cache.counts.misses == 2 && cache.counts.hits == 0)
        #expect(PolicyLoader.load(directory: dir, cache: cache).policy == first.policy)
        #expect(cache.counts.hits == 2)

        try "zones:\n  web: {members: [192.0.2.0/28, 192.0.2.99]}\n".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        let edited = PolicyLoader.load(directory: dir, cache: cache)
        #expect(cache.counts.misses == 3 && cache.counts.hits == 3, "only the edited file is parsed again")
        #expect(edited.policy == PolicyLoader.load(directory: dir).policy)
        #expect(edited.policy?.zone(named: "web")?.members.count == 2)

        try "zones: [".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        let broken = PolicyLoader.load(directory: dir, cache: cache)
        #expect(broken.policy == nil && broken.errors == PolicyLoader.load(directory: dir).errors, "diagnostics come from the cache too")
    }
}
