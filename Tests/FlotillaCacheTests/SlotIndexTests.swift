import FlotillaCore
import Testing

@testable import FlotillaCache

@Suite("Slot index")
struct SlotIndexTests {
    /// Many keys in few home buckets (clusters that wrap around the table's end), inserted and
    /// removed at random against a plain dictionary: every lookup agrees, after every step.
    @Test(arguments: [UInt64(1), 2, 3])
    func agreesWithADictionaryUnderCollisionsAndChurn(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var index = SlotIndex()
        // key -> (hash, slot); hashes from a small set so that probes collide and wrap.
        var reference: [Int: (hash: UInt32, slot: Int32)] = [:]
        var nextSlot: Int32 = 0
        func everyKeyIsFound() -> Bool {
            reference.values.allSatisfy { entry in index.find(hash: entry.hash) { $0 == entry.slot } == entry.slot }
        }
        for step in 0..<20_000 {
            let key = Int(random.next() % 3_000)
            if let existing = reference[key] {
                index.remove(hash: existing.hash, slot: existing.slot)
                reference[key] = nil
            } else {
                let hash = UInt32(truncatingIfNeeded: random.next() % 7) &* 0x9E37_79B9 | 15
                index.insert(hash: hash, slot: nextSlot)
                reference[key] = (hash, nextSlot)
                nextSlot += 1
            }
            #expect(index.count == reference.count)
            if step % 500 == 0 { #expect(everyKeyIsFound(), "step \(step)") }
        }
        #expect(everyKeyIsFound())
        // A slot that was removed is found under no hash.
        let live = Set(reference.values.map(\.slot))
        for hash in (0..<7).map({ UInt32($0) &* 0x9E37_79B9 | 15 }) {
            #expect(index.find(hash: hash) { !live.contains($0) } == nil)
        }
        index.removeAll()
        #expect(index.count == 0)
    }
}
