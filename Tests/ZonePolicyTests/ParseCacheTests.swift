import Foundation
import Testing
@testable import ZonePolicy
import TestSupport

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

    /// A file whose stamp (inode, size, times) is unchanged since it was read is not read again,
    /// but only when its last change was settled (a second old) at the read: a write in the same
    /// clock tick as the read, keeping the size, would keep the stamp.
    @Test func unchangedSettledFilesAreNotReadAgain() throws {
        let dir = NSTemporaryDirectory() + "zw-stamp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ member: String) throws {
            // In place (no rename): same inode, same size; only the content and the times change.
            let handle = try #require(FileHandle(forWritingAtPath: dir + "/a.yaml"))
            try handle.write(contentsOf: Data("zones:\n  web: {members: [\(member)]}\n".utf8))
            try handle.close()
        }
        _ = FileManager.default.createFile(atPath: dir + "/a.yaml", contents: nil)
        try write("192.0.2.1")
        try "zones:\n  db: {members: [203.0.113.5]}\nallow:\n  - {from: web, to: db, ports: [tcp/5432]}\n"
            .write(toFile: dir + "/b.yaml", atomically: true, encoding: .utf8)
        let cache = ParseCache()
        func web() -> [String]? {
            PolicyLoader.load(directory: dir, cache: cache, warnings: false).policy?.zone(named: "web")?.members.map(\.value.description)
        }

        // Fresh files are read at every load, however often.
        #expect(web() == ["192.0.2.1"] && web() == ["192.0.2.1"])
        #expect(cache.unreadFiles == 0)
        try write("192.0.2.2")
        #expect(web() == ["192.0.2.2"], "an edit in the same tick as the last read is seen")

        Thread.sleep(forTimeInterval: 1.1)
        #expect(web() == ["192.0.2.2"])      // read: settled now, so stamped
        #expect(cache.unreadFiles == 0)
        #expect(web() == ["192.0.2.2"])
        #expect(cache.unreadFiles == 2, "both files served without reading")

        try write("192.0.2.3")
        #expect(web() == ["192.0.2.3"], "an in-place edit of the same size is read")
        #expect(cache.unreadFiles == 3, "the other file is still not read")
        try write("192.0.2.4")
        #expect(web() == ["192.0.2.4"], "the edited file is not trusted by its stamp until it settles")
        #expect(cache.unreadFiles == 4)
    }
}

/// The daemon's reloads patch the last resolve when only members changed
/// (`ResolvedPolicy.patched`): on random edits, of members and of everything else, a load
/// through the cache gives exactly what a load from scratch gives, policy and diagnostics.
struct PatchedResolveTests {
    struct Model {
        var files: [[(name: String, members: [String], units: [String])]]
        var rules: [(String, String, String)]
        var leadingComments: [Int]

        func text(file f: Int) -> String {
            var t = String(repeating: "# note\n", count: leadingComments[f]) + "zones:\n"
            for z in files[f] {
                t += "  \(z.name):\n    members: [\(z.members.joined(separator: ", "))]\n"
                if !z.units.isEmpty { t += "    units: [\(z.units.joined(separator: ", "))]\n" }
            }
            return t
        }

        var rulesText: String {
            "allow:\n" + rules.map { "  - {from: \($0.0), to: \($0.1), ports: [\($0.2)]}\n" }.joined()
        }
    }

    @Test func cachedLoadsEqualLoadsFromScratchOnRandomEdits() throws {
        let dir = NSTemporaryDirectory() + "zw-patch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var rng = SplitMix64(seed: 42)
        var next = 1
        func fresh() -> String {
            next += 1
            return "198.51.\(next / 250).\(next % 250 + 1)"
        }
        var model = Model(files: [], rules: [], leadingComments: [0, 0, 0])
        for f in 0..<3 {
            model.files.append((0..<6).map { z in (name: "f\(f)z\(z)", members: (0..<3).map { _ in fresh() }, units: []) })
        }
        for _ in 0..<8 {
            let a = model.files.randomElement(using: &rng)!.randomElement(using: &rng)!.name
            let b = model.files.randomElement(using: &rng)!.randomElement(using: &rng)!.name
            model.rules.append((a, b, "tcp/\(Int.random(in: 1...9000, using: &rng))"))
        }
        func write() throws {
            for f in model.files.indices {
                try model.text(file: f).write(toFile: dir + "/zones-\(f).yaml", atomically: true, encoding: .utf8)
            }
            try model.rulesText.write(toFile: dir + "/rules.yaml", atomically: true, encoding: .utf8)
        }
        try write()
        let cache = ParseCache()
        var kinds: [String: Int] = [:]
        for step in 0..<400 {
            let f = Int.random(in: 0..<3, using: &rng), z = Int.random(in: 0..<model.files[f].count, using: &rng)
            let kind = Int.random(in: 0..<100, using: &rng)
            var saved = model
            switch kind {
            case 0..<35: model.files[f][z].members.append(fresh()); kinds["add", default: 0] += 1
            case 35..<60:
                if !model.files[f][z].members.isEmpty { model.files[f][z].members.removeLast() }
                kinds["remove", default: 0] += 1
            case 60..<68:  // a member of another zone: an error, then undone
                let g = Int.random(in: 0..<3, using: &rng)
                if let m = model.files[g].randomElement(using: &rng)?.members.first { model.files[f][z].members.append(m) }
                kinds["taken", default: 0] += 1
            case 68..<74:  // listed twice: a warning, then undone
                if let m = model.files[f][z].members.first { model.files[f][z].members.append(m) }
                kinds["twice", default: 0] += 1
            case 74..<84: model.leadingComments[f] = Int.random(in: 0...3, using: &rng); kinds["moved", default: 0] += 1
            case 84..<90: model.files[f][z].units = model.files[f][z].units.isEmpty ? ["svc-\(step).service"] : []; kinds["units", default: 0] += 1
            case 90..<95:
                model.rules[Int.random(in: 0..<model.rules.count, using: &rng)].2 = "udp/\(Int.random(in: 1...9000, using: &rng))"
                kinds["rule", default: 0] += 1
            default:  // two changed files in one reload, the same new address in both: an error
                let a = fresh()
                let g = (f + 1) % 3
                model.files[f][z].members.append(a)
                model.files[g][0].members.append(a)
                kinds["both", default: 0] += 1
            }
            try write()
            let cached = PolicyLoader.load(directory: dir, concurrently: false, cache: cache, warnings: false)
            let scratch = PolicyLoader.load(directory: dir, concurrently: false, warnings: false)
            #expect(cached.policy == scratch.policy, "step \(step): the patched policy differs from a full resolve")
            #expect(cached.diagnostics == scratch.diagnostics, "step \(step): the diagnostics differ")
            if !scratch.diagnostics.isEmpty {
                model = saved  // undo what was refused, as an operator would
                saved = model
                try write()
            }
        }
        #expect(kinds.count == 8, "every kind of edit was tried: \(kinds)")
        #expect(cache.patchedLoads > 100, "most member edits were patched, not resolved: \(cache.patchedLoads)")
    }
}
