import FlotillaCore
import Testing

@Suite("Upstream pickers: round robin, two choices, bounded-load hashing")
struct PickerTests {
    // MARK: Round robin

    @Test func roundRobinTakesTurnsFairly() {
        var picker = RoundRobinPicker(count: 4)
        var picks: [Int] = []
        var counts = [0, 0, 0, 0]
        for _ in 0..<400 {
            guard let upstream = picker.pick() else { break }
            if picks.count < 6 { picks.append(upstream) }
            counts[upstream] += 1
        }
        #expect(picks == [0, 1, 2, 3, 0, 1])
        #expect(counts == [100, 100, 100, 100])
    }

    @Test func roundRobinSkipsIneligibleUpstreams() {
        var picker = RoundRobinPicker(count: 4, start: 2)
        let picks = (0..<6).map { _ in picker.pick { $0 != 2 } }
        #expect(picks == [3, 0, 1, 3, 0, 1])
        // None eligible: nil, and the turn does not move.
        #expect(picker.pick { _ in false } == nil)
        #expect(picker.next == 2)
        #expect(picker.pick() == 2)
        var empty = RoundRobinPicker(count: 0)
        #expect(empty.pick() == nil)
    }

    @Test func roundRobinAsksEachUpstreamAtMostOnce() {
        var picker = RoundRobinPicker(count: 5, start: -1)
        var asked: [Int] = []
        let picked = picker.pick { upstream in
            asked.append(upstream)
            return false
        }
        #expect(picked == nil)
        #expect(asked == [4, 0, 1, 2, 3])
    }

    // MARK: Power of two choices

    @Test func twoChoicesPickTheLowerLoadAndNeverAnIneligibleUpstream() {
        let picker = PowerOfTwoChoicesPicker(count: 5)
        var generator = SplitMix64(seed: 7)
        let loads = [0, 9, 0, 4, 2]
        // Upstreams 0 and 2 are idle but ineligible; of 1 and 3 the lower load always wins.
        for _ in 0..<200 {
            #expect(picker.pick(where: { $0 == 1 || $0 == 3 }, load: { loads[$0] }, using: &generator) == 3)
            #expect(picker.pick(from: [1, 3], load: { loads[$0] }, using: &generator) == 3)
        }
        #expect(picker.pick(where: { $0 == 1 }, load: { loads[$0] }, using: &generator) == 1)
        #expect(picker.pick(where: { _ in false }, load: { loads[$0] }, using: &generator) == nil)
        #expect(picker.pick(from: [4], load: { loads[$0] }, using: &generator) == 4)
        #expect(picker.pick(from: [], load: { loads[$0] }, using: &generator) == nil)
    }

    @Test func twoChoicesSpreadEvenlyAndAvoidTheMostLoaded() {
        let picker = PowerOfTwoChoicesPicker(count: 5)
        var generator = SplitMix64(seed: 0x5EED)
        var even = [0, 0, 0, 0, 0]
        var skewed = [0, 0, 0, 0, 0]
        let loads = [50, 10, 20, 30, 40]
        for _ in 0..<10_000 {
            let evenPick = picker.pick(where: { $0 != 4 }, load: { _ in 0 }, using: &generator)
            let skewedPick = picker.pick(where: { _ in true }, load: { loads[$0] }, using: &generator)
            guard let evenPick, let skewedPick else {
                Issue.record("no pick among eligible upstreams")
                break
            }
            even[evenPick] += 1
            skewed[skewedPick] += 1
        }
        // Equal loads: uniform over the eligible four (2,500 each, σ ≈ 43).
        #expect(even[4] == 0)
        #expect(even[0..<4].allSatisfy { (2_300...2_700).contains($0) })
        // Distinct loads: the k-th least loaded of 5 wins when it is drawn with a more loaded one:
        // (5 - k) × 2 / 20 of the time, so 40 %, 30 %, 20 %, 10 %, 0 %.
        #expect(skewed[0] == 0)
        #expect((3_750...4_250).contains(skewed[1]))
        #expect((2_750...3_250).contains(skewed[2]))
        #expect((1_800...2_200).contains(skewed[3]))
        #expect((850...1_150).contains(skewed[4]))
    }

    // MARK: Bounded-load consistent hashing

    static let names = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80"]

    @Test func theBoundIsTheCeilingOfTheFactorTimesTheMeanLoad() {
        let picker = BoundedLoadHashPicker(names: Self.names, balanceFactor: 1.25)
        #expect(picker.balancePercent == 125)
        #expect(picker.bound(totalLoad: 0, eligibleCount: 4) == 1)
        #expect(picker.bound(totalLoad: 7, eligibleCount: 2) == 5)
        #expect(picker.bound(totalLoad: 99, eligibleCount: 4) == 32)
        #expect(picker.bound(totalLoad: 5, eligibleCount: 0) == 0)
        #expect(BoundedLoadHashPicker(names: Self.names, balanceFactor: 0.5).balancePercent == 100)
    }

    @Test func withLowLoadsAKeyStaysWithItsRingOwner() {
        let picker = BoundedLoadHashPicker(names: Self.names)
        let reordered = BoundedLoadHashPicker(names: Self.names.reversed())
        var owners = Set<Int>()
        for index in 0..<500 {
            let key = "user:\(index)"
            let owner = picker.owner(forHash: picker.hash(key))
            let picked = picker.pick(for: key, where: { _ in true }, load: { _ in 0 })
            #expect(picked == owner)
            #expect(picker.pick(for: Array(key.utf8), where: { _ in true }, load: { _ in 0 }) == owner)
            // The names' order does not matter.
            let again = reordered.pick(for: key, where: { _ in true }, load: { _ in 0 })
            #expect(again.map { reordered.names[$0] } == owner.map { picker.names[$0] })
            if let owner { owners.insert(owner) }
        }
        #expect(owners.count == Self.names.count)
    }

    @Test func aKeySpillsClockwiseWhenItsOwnerIsAtItsBound() {
        let picker = BoundedLoadHashPicker(names: Self.names)
        for index in 0..<200 {
            let key = "session:\(index)"
            guard let owner = picker.owner(forHash: picker.hash(key)) else { continue }
            // The next upstream clockwise: the owner when it is not eligible.
            let next = picker.pick(for: key, where: { $0 != owner }, load: { _ in 0 })
            // Owner at 2 in flight, the rest idle: bound ceil(1.25 × 3 / 5) = 1.
            #expect(picker.pick(for: key, where: { _ in true }, load: { $0 == owner ? 2 : 0 }) == next)
            // Owner idle, the rest at 1: bound ceil(1.25 × 5 / 5) = 2, and the key stays home.
            #expect(picker.pick(for: key, where: { _ in true }, load: { $0 == owner ? 0 : 1 }) == owner)
        }
        let pair = BoundedLoadHashPicker(names: ["a:1", "b:1"])
        let home = pair.owner(forHash: pair.hash("k"))
        #expect(home != nil)
        #expect(pair.pick(for: "k", where: { _ in true }, load: { $0 == home ? 5 : 0 }) == home.map { 1 - $0 })
        #expect(pair.pick(for: "k", where: { _ in false }, load: { _ in 0 }) == nil)
        #expect(BoundedLoadHashPicker(names: []).pick(for: "k", where: { _ in true }, load: { _ in 0 }) == nil)
    }

    @Test func noUpstreamEverExceedsItsBound() {
        let picker = BoundedLoadHashPicker(names: Self.names, balanceFactor: 1.25)
        var generator = SplitMix64(seed: 42)
        var loads = [Int](repeating: 0, count: Self.names.count)
        var inFlight: [Int] = []
        var spills = 0
        for step in 0..<10_000 {
            // A hot key for a third of the requests; upstream 3 is out for a stretch.
            let key = Int.random(in: 0..<3, using: &generator) == 0 ? "hot" : "key:\(generator.next() % 1_000)"
            let eligible: (Int) -> Bool = { !(4_000..<6_000).contains(step) || $0 != 3 }
            let eligibleCount = (0..<loads.count).filter(eligible).count
            let total = (0..<loads.count).filter(eligible).reduce(0) { $0 + loads[$1] }
            let bound = picker.bound(totalLoad: total, eligibleCount: eligibleCount)
            guard let upstream = picker.pick(for: key, where: eligible, load: { loads[$0] }) else {
                Issue.record("no pick at step \(step)")
                break
            }
            #expect(eligible(upstream))
            #expect(loads[upstream] + 1 <= bound)
            if upstream != picker.owner(forHash: picker.hash(key)) { spills += 1 }
            loads[upstream] += 1
            inFlight.append(upstream)
            // Requests finish in random order; about 40 stay in flight.
            while inFlight.count > 40 {
                let done = inFlight.remove(at: Int.random(in: 0..<inFlight.count, using: &generator))
                loads[done] -= 1
            }
        }
        // The hot key had to spill, and did.
        #expect(spills > 1_000)
    }

    @Test func removingAnUpstreamMovesOnlyItsKeys() throws {
        let all = BoundedLoadHashPicker(names: Self.names)
        let fewer = BoundedLoadHashPicker(names: Self.names.filter { $0 != "10.0.0.3:80" })
        var moved = 0
        let keys = 2_000
        for index in 0..<keys {
            let key = "object/\(index)"
            let before = all.names[try #require(all.pick(for: key, where: { _ in true }, load: { _ in 0 }))]
            let after = fewer.names[try #require(fewer.pick(for: key, where: { _ in true }, load: { _ in 0 }))]
            // Making it ineligible is the same as removing it.
            let others = all.pick(for: key, where: { all.names[$0] != "10.0.0.3:80" }, load: { _ in 0 })
            let ineligible = all.names[try #require(others)]
            #expect(after == ineligible)
            if before == "10.0.0.3:80" {
                moved += 1
                #expect(after != before)
            } else {
                #expect(after == before)
            }
        }
        // About a fifth of the keys lived on the removed upstream.
        #expect((keys / 5 - 150...keys / 5 + 150).contains(moved))
    }
}
