import Dispatch
import Foundation
import Ruleset

/// Reads back the sets of a staged build (`Transaction.stages(creating:budget:)`) while the
/// build goes on.
///
/// Each stage's batch keeps one processor busy in the kernel; reading the sets the committed
/// stages completed keeps another busy meanwhile, so verifying a cold apply costs little more
/// than the build itself. No later stage touches a completed set, and the build stops if
/// anyone else commits in between (each stage is pinned to the previous one's generation),
/// so what is read here is what the kernel holds once the build is done. The caller still
/// checks, at the end, that the generation has not moved since the last stage and that the
/// table's skeleton is the desired one.
final class StageVerifier: @unchecked Sendable {
    private let desired: [String: NamedSet]
    private let read: @Sendable ([NamedSet]) throws -> [NamedSet]
    private let queue = DispatchQueue(label: "zonewall.stage-verifier")
    // Touched only on `queue`, and by `finish` after draining it.
    private var differing: [String] = []
    private var failure: (any Error)?

    /// `read` returns the given sets as the kernel holds them (for example
    /// `NetlinkKernel.elements(of:family:table:readers:)`).
    init(desired: Table, read: @escaping @Sendable ([NamedSet]) throws -> [NamedSet]) {
        self.desired = Dictionary(desired.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.read = read
    }

    /// Queues the sets a committed stage completed for reading; returns at once.
    func verify(_ names: [String]) {
        let sets = names.compactMap { desired[$0] }
        guard !sets.isEmpty else { return }
        queue.async { [self] in
            guard failure == nil else { return }
            do {
                for kernelSet in try read(sets) {
                    guard let want = desired[kernelSet.name], kernelSet.elements.holdsSameElements(as: want.elements) else {
                        differing.append(kernelSet.name)
                        continue
                    }
                }
            } catch {
                failure = error
            }
        }
    }

    /// Waits for the queued reads; returns the names of the sets whose elements differ from
    /// the desired ones, or throws the first read error.
    func finish() throws -> [String] {
        queue.sync {}
        if let failure { throw failure }
        return differing
    }
}
