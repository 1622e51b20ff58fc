import FlotillaCore
import Testing

@Suite("Fan-out: scatter, hedge, fail over, gather by the deadline")
struct FanOutTests {
    let t0 = ContinuousClock.now
    /// Three partitions, replicas named 10, 11, 12 for partition 0, 20, 21, 22 for partition 1, ….
    let replicas = [[10, 11, 12], [20, 21, 22], [30, 31, 32]]
    let plain = FanOut.Configuration(deadline: .milliseconds(100))
    let hedging = FanOut.Configuration(deadline: .milliseconds(100), hedgeAfter: .milliseconds(20))

    @Test func everyPartitionAnsweringCompletesFull() {
        var fanOut = FanOut(replicas: replicas, configuration: plain)
        #expect(fanOut.start(now: t0) == [sent(0, 10), sent(1, 20), sent(2, 30)])
        #expect(fanOut.nextWakeUp == t0 + .milliseconds(100))
        #expect(fanOut.onReply(partition: 2, replica: 30, now: t0 + .milliseconds(3)) == [])
        #expect(fanOut.onReply(partition: 0, replica: 10, now: t0 + .milliseconds(4)) == [])
        #expect(fanOut.onReply(partition: 1, replica: 20, now: t0 + .milliseconds(5)) == [.complete(.full)])
        #expect(fanOut.outcome == .full)
        #expect(fanOut.nextWakeUp == nil)
    }

    @Test func aLatePartitionIsMissingAtTheDeadline() {
        var fanOut = FanOut(replicas: replicas, configuration: plain)
        _ = fanOut.start(now: t0)
        _ = fanOut.onReply(partition: 0, replica: 10, now: t0 + .milliseconds(10))
        _ = fanOut.onReply(partition: 2, replica: 30, now: t0 + .milliseconds(10))
        #expect(fanOut.onTick(now: t0 + .milliseconds(99)) == [])
        let atDeadline = fanOut.onTick(now: t0 + .milliseconds(100))
        #expect(atDeadline == [.cancel(partition: 1, replica: 20), .complete(.partial(missing: [1]))])
        // Too late, and over.
        #expect(fanOut.onReply(partition: 1, replica: 20, now: t0 + .milliseconds(101)) == [])
        #expect(fanOut.onTick(now: t0 + .milliseconds(200)) == [])
        #expect(fanOut.outcome == .partial(missing: [1]))
    }

    @Test func aReplyAtTheDeadlineIsLateEvenBeforeTheTick() {
        var fanOut = FanOut(replicas: replicas, configuration: plain)
        _ = fanOut.start(now: t0)
        _ = fanOut.onReply(partition: 0, replica: 10, now: t0 + .milliseconds(10))
        let late = fanOut.onReply(partition: 1, replica: 20, now: t0 + .milliseconds(100))
        #expect(
            late == [
                .cancel(partition: 1, replica: 20), .cancel(partition: 2, replica: 30),
                .complete(.partial(missing: [1, 2])),
            ]
        )
    }

    @Test func aSlowPartitionIsHedgedAndTheFirstAnswerWins() {
        var budget = HedgeBudget()
        var fanOut = FanOut(replicas: replicas, configuration: hedging)
        _ = fanOut.start(now: t0, budget: &budget)
        _ = fanOut.onReply(partition: 0, replica: 10, now: t0 + .milliseconds(5))
        _ = fanOut.onReply(partition: 2, replica: 30, now: t0 + .milliseconds(6))
        #expect(fanOut.nextWakeUp == t0 + .milliseconds(20))
        #expect(fanOut.onTick(now: t0 + .milliseconds(19), budget: &budget) == [])
        #expect(fanOut.onTick(now: t0 + .milliseconds(20), budget: &budget) == [sent(1, 21)])
        #expect(budget.tokens == 9)
        // Hedged once only.
        #expect(fanOut.nextWakeUp == t0 + .milliseconds(100))
        #expect(fanOut.onTick(now: t0 + .milliseconds(60), budget: &budget) == [])
        let won = fanOut.onReply(partition: 1, replica: 21, now: t0 + .milliseconds(25))
        #expect(won == [.cancel(partition: 1, replica: 20), .complete(.full)])
        #expect(fanOut.onReply(partition: 1, replica: 20, now: t0 + .milliseconds(26)) == [])
    }

    @Test func theOriginalAnsweringFirstCancelsTheHedge() {
        var budget = HedgeBudget()
        var fanOut = FanOut(replicas: [[1, 2]], configuration: hedging)
        _ = fanOut.start(now: t0, budget: &budget)
        #expect(fanOut.onTick(now: t0 + .milliseconds(20), budget: &budget) == [sent(0, 2)])
        let won = fanOut.onReply(partition: 0, replica: 1, now: t0 + .milliseconds(21))
        #expect(won == [.cancel(partition: 0, replica: 2), .complete(.full)])
    }

    @Test func noHedgeOnceTheBudgetIsSpent() {
        var budget = HedgeBudget(ratio: 0, capacity: 1)
        var fanOut = FanOut(replicas: replicas, configuration: hedging)
        _ = fanOut.start(now: t0, budget: &budget)
        // Three hedges due, one token.
        #expect(fanOut.onTick(now: t0 + .milliseconds(20), budget: &budget) == [sent(0, 11)])
        #expect(budget.tokens == 0)
        // The refused ones are not retried.
        #expect(fanOut.nextWakeUp == t0 + .milliseconds(100))
        #expect(fanOut.onTick(now: t0 + .milliseconds(50), budget: &budget) == [])
        var unhedged = FanOut(replicas: replicas, configuration: hedging)
        _ = unhedged.start(now: t0)
        #expect(unhedged.onTick(now: t0 + .milliseconds(20)) == [])
    }

    @Test func theBudgetEarnsPerRequestUpToItsCapacity() {
        var budget = HedgeBudget(ratio: 0.1, capacity: 2)
        let full = [budget.spend(), budget.spend(), budget.spend()]
        #expect(full == [true, true, false])
        budget.earn(requests: 9)
        let afterNine = budget.spend()
        #expect(!afterNine)
        budget.earn()
        let afterTen = budget.spend()
        #expect(afterTen)
        budget.earn(requests: 1_000)
        #expect(budget.tokens == 2)
        var fanOut = FanOut(replicas: replicas, configuration: hedging)
        var drained = HedgeBudget(ratio: 0.5, capacity: 10)
        for _ in 0..<10 { _ = drained.spend() }
        #expect(drained.tokens == 0)
        _ = fanOut.start(now: t0, budget: &drained)
        #expect(drained.tokens == 1.5)
    }

    @Test func aFailureMovesToTheNextReplicaUntilNoneIsLeft() {
        var fanOut = FanOut(replicas: replicas, configuration: plain)
        _ = fanOut.start(now: t0)
        #expect(fanOut.onFailure(partition: 0, replica: 10, now: t0 + .milliseconds(1)) == [sent(0, 11)])
        #expect(fanOut.onFailure(partition: 0, replica: 11, now: t0 + .milliseconds(2)) == [sent(0, 12)])
        #expect(fanOut.onFailure(partition: 0, replica: 12, now: t0 + .milliseconds(3)) == [])
        _ = fanOut.onReply(partition: 1, replica: 20, now: t0 + .milliseconds(4))
        // Nothing more can come: complete before the deadline.
        let last = fanOut.onReply(partition: 2, replica: 30, now: t0 + .milliseconds(5))
        #expect(last == [.complete(.partial(missing: [0]))])
    }

    @Test func aFailureAtTheDeadlineEndsTheRequest() {
        var fanOut = FanOut(replicas: [[1, 2]], configuration: plain)
        _ = fanOut.start(now: t0)
        let late = fanOut.onFailure(partition: 0, replica: 1, now: t0 + .milliseconds(100))
        #expect(late == [.cancel(partition: 0, replica: 1), .complete(.partial(missing: [0]))])
    }

    @Test func aFailureWhileTheHedgeIsOutWaitsForTheHedge() {
        var budget = HedgeBudget()
        var fanOut = FanOut(replicas: [[1, 2, 3]], configuration: hedging)
        _ = fanOut.start(now: t0, budget: &budget)
        _ = fanOut.onTick(now: t0 + .milliseconds(20), budget: &budget)
        #expect(fanOut.onFailure(partition: 0, replica: 1, now: t0 + .milliseconds(21)) == [])
        #expect(fanOut.onFailure(partition: 0, replica: 2, now: t0 + .milliseconds(22)) == [sent(0, 3)])
        #expect(fanOut.onReply(partition: 0, replica: 3, now: t0 + .milliseconds(23)) == [.complete(.full)])
    }

    @Test func aFailedOverCopyCanStillBeHedged() {
        var budget = HedgeBudget()
        var fanOut = FanOut(replicas: [[1, 2, 3]], configuration: hedging)
        _ = fanOut.start(now: t0, budget: &budget)
        _ = fanOut.onFailure(partition: 0, replica: 1, now: t0 + .milliseconds(10))
        #expect(fanOut.nextWakeUp == t0 + .milliseconds(30))
        #expect(fanOut.onTick(now: t0 + .milliseconds(29), budget: &budget) == [])
        #expect(fanOut.onTick(now: t0 + .milliseconds(30), budget: &budget) == [sent(0, 3)])
    }

    @Test func duplicateStrayAndLateInputsAreIgnored() {
        var fanOut = FanOut(replicas: replicas, configuration: plain)
        #expect(fanOut.onReply(partition: 0, replica: 10, now: t0) == [])
        _ = fanOut.start(now: t0)
        #expect(fanOut.start(now: t0) == [])
        #expect(fanOut.onReply(partition: 0, replica: 10, now: t0 + .milliseconds(1)) == [])
        #expect(fanOut.onReply(partition: 0, replica: 10, now: t0 + .milliseconds(2)) == [])
        #expect(fanOut.onFailure(partition: 0, replica: 10, now: t0 + .milliseconds(2)) == [])
        // Never sent, or no such partition.
        #expect(fanOut.onReply(partition: 1, replica: 21, now: t0 + .milliseconds(2)) == [])
        #expect(fanOut.onReply(partition: 7, replica: 20, now: t0 + .milliseconds(2)) == [])
        _ = fanOut.onReply(partition: 1, replica: 20, now: t0 + .milliseconds(3))
        #expect(fanOut.onReply(partition: 2, replica: 30, now: t0 + .milliseconds(4)) == [.complete(.full)])
        #expect(fanOut.onFailure(partition: 2, replica: 30, now: t0 + .milliseconds(5)) == [])
        #expect(fanOut.onTick(now: t0 + .seconds(1)) == [])
        #expect(fanOut.outcome == .full)
    }

    @Test func partitionsWithoutReplicasAreMissingFromTheStart() {
        var none = FanOut(replicas: [], configuration: plain)
        #expect(none.start(now: t0) == [.complete(.full)])
        var empty = FanOut(replicas: [[], [5]], configuration: plain)
        #expect(empty.start(now: t0) == [sent(1, 5)])
        #expect(empty.onReply(partition: 1, replica: 5, now: t0) == [.complete(.partial(missing: [0]))])
    }

    private func sent(_ partition: Int, _ replica: Int) -> FanOut.Action {
        .send(partition: partition, replica: replica)
    }
}
