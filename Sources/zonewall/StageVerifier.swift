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
    private let confirm: @Sendable (ElementList, NamedSet) throws -> Bool
    private let confirms: @Sendable (NamedSet) -> Bool
    private let queue = DispatchQueue(label: "zonewall.stage-verifier")
    // Touched only on `queue`, and by `finish` after draining it.
    private var differing: [String] = []
    private var failure: (any Error)?

    /// `read` returns the given sets as the kernel holds them (for example
    /// `NetlinkKernel.elements(of:family:table:readers:)`). For the sets `confirms` picks,
    /// `confirm` says instead whether the kernel holds the given elements of the set, some or
    /// all of them (`NetlinkKernel.holds`), and each stage's elements are confirmed as soon as
    /// that stage is committed.
    init(desired: Table, read: @escaping @Sendable ([NamedSet]) throws -> [NamedSet],
         confirms: @escaping @Sendable (NamedSet) -> Bool,
         confirm: @escaping @Sendable (ElementList, NamedSet) throws -> Bool) {
        self.desired = Dictionary(desired.sets.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.read = read
        self.confirms = confirms
        self.confirm = confirm
    }

    /// Queues the checks of a committed stage; returns at once. The sets it completed are read
    /// back and compared, except those `confirms` picks: of these, the elements this stage
    /// added are confirmed.
    func verify(_ stage: Stage) {
        let sets = stage.completedSets.compactMap { desired[$0] }.filter { !confirms($0) }
        var added: [(ElementList, NamedSet)] = []
        for change in stage.transaction.changes {
            if case .addElements(let name, let elements) = change, let set = desired[name], confirms(set) {
                added.append((elements, set))
            }
        }
        guard !sets.isEmpty || !added.isEmpty else { return }
        // In parts, each read with the readers there are when it starts: more once the build is done.
        var parts = stride(from: 0, to: sets.count, by: Self.setsPerRead).map { Array(sets[$0 ..< min($0 + Self.setsPerRead, sets.count)]) }
        if parts.isEmpty { parts = [[]] }
        for (k, sets) in parts.enumerated() { enqueue(sets, added: k == 0 ? added : []) }
    }

    /// Sets read in one go: small enough that the reads left when the build ends use every processor.
    static let setsPerRead = 64

    private func enqueue(_ sets: [NamedSet], added: [(ElementList, NamedSet)]) {
        queue.async { [self, added] in
            guard failure == nil else { return }
            do {
                for (elements, set) in added where try !confirm(elements, set) {
                    if !differing.contains(set.name) { differing.append(set.name) }
                }
                guard !sets.isEmpty else { return }
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
