import Foundation
@testable import Netfilter
import Testing

/// The seed corpora of the `table-dump` and `notifications` fuzz targets: every file decodes or
/// throws a `NetfilterError`, never traps, and the per-object seeds cut from the kernel dump (a
/// table with one chain and its rules, or one set and its elements) each decode to a table.
/// Reproducers the fuzzer finds go into the corpus and are checked here.
@Suite("Netlink decoders: seed corpora and fuzz reproducers")
struct NetfilterFuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fuzz/Corpus").standardizedFileURL

    static func files(_ target: String) throws -> [(String, [UInt8])] {
        let dir = corpus.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted().map {
            ($0, [UInt8](try Data(contentsOf: dir.appendingPathComponent($0))))
        }
    }

    @Test func tableDumpSeedsDecodeOrThrow() throws {
        let files = try Self.files("table-dump")
        #expect(files.count >= 15)
        for (name, bytes) in files {
            do {
                let table = try decodeTableDump(bytes)
                if name.hasPrefix("chain-") || name.hasPrefix("set-") || name == "table-only" {
                    #expect(table?.name == "zonewall", "\(name)")
                }
            } catch is NetfilterError {
                #expect(!name.hasPrefix("chain-") && !name.hasPrefix("set-"), "\(name) is a whole dump")
            }
        }
    }

    @Test func notificationSeedsDecodeOrThrow() throws {
        for (_, bytes) in try Self.files("notifications") {
            _ = try? decodeChangeNotifications(bytes)
        }
    }
}
