import FlotillaCore
import Foundation
import Testing

@Suite("Plan: shard, scatter/gather and queue arithmetic")
struct PlanTests {
    // MARK: Shards

    /// The course's example: 400 GB, 10 000 req/s, 1 000 req/s and 32 GB per node.
    private func coursePlan(access: ShardPlan.Access = .uniform, replicas: Int = 1) throws -> ShardPlan.Result {
        var input = ShardPlan.Input(
            dataBytes: 400e9,
            requestsPerSecond: 10_000,
            requestsPerSecondPerNode: 1_000,
            cacheBytesPerNode: 32e9
        )
        input.access = access
        input.replicas = replicas
        return try ShardPlan(input).compute()
    }

    @Test func courseShardNumbers() throws {
        let plan = try coursePlan()
        #expect(plan.nodes == 10)
        #expect(abs(plan.hitRateUnsharded - 0.08) < 1e-12)
        #expect(abs(plan.hitRateSharded - 0.80) < 1e-12)
        #expect(plan.totalCacheBytes == 320e9)
        #expect(plan.uniqueCacheBytes == 320e9)
        #expect(plan.nodesForFullCache == 13)
    }

    @Test func replicasCostMemory() throws {
        let plan = try coursePlan(replicas: 2)
        #expect(plan.nodes == 10)
        #expect(plan.totalCacheBytes == 320e9)
        #expect(plan.uniqueCacheBytes == 160e9)
        #expect(abs(plan.hitRateSharded - 0.40) < 1e-12)
        #expect(plan.nodesForFullCache == 25)
    }

    @Test("more cache than data caches the data, not more")
    func uniqueCacheIsCappedAtTheData() throws {
        let input = ShardPlan.Input(
            dataBytes: 400e9,
            requestsPerSecond: 10_000,
            requestsPerSecondPerNode: 1_000,
            cacheBytesPerNode: 1e12
        )
        let plan = try ShardPlan(input).compute()
        #expect(plan.totalCacheBytes == 10e12)
        #expect(plan.uniqueCacheBytes == 400e9)
        #expect(plan.hitRateSharded == 1)
    }

    @Test func harmonicNumbers() {
        #expect(ShardPlan.harmonic(0, 1) == 0)
        #expect(ShardPlan.harmonic(1, 1) == 1)
        #expect(abs(ShardPlan.harmonic(4, 1) - 25.0 / 12) < 1e-15)
        #expect(abs(ShardPlan.harmonic(1_000_000, 1) - 14.392_726_722_864) < 1e-11)
        // H(n, 2) tends to π²/6 with a tail of about 1/n.
        #expect(abs(ShardPlan.harmonic(1_000_000_000, 2) - (Double.pi * Double.pi / 6 - 1e-9)) < 1e-12)
        // H(n, 1) = ln n + γ + 1/2n − …, checked where the exact sum is out of reach.
        let gamma = 0.577_215_664_901_532_9
        #expect(abs(ShardPlan.harmonic(1_000_000_000, 1) - (20.723_265_836_946_41 + gamma + 5e-10)) < 1e-9)
    }

    @Test(arguments: [0.5, 0.99, 1.0, 1.01, 1.5])
    func harmonicIsContinuousAcrossTheExactSum(exponent: Double) {
        // Where the Euler–Maclaurin tail takes over, the next term must be exactly the next k^-s.
        let n = 10_000
        let step = ShardPlan.harmonic(n + 1, exponent) - ShardPlan.harmonic(n, exponent)
        #expect(abs(step - pow(10_001, -exponent)) < 1e-12)
    }

    @Test func zipfCachesFarMoreThanItsShare() throws {
        var input = ShardPlan.Input(
            dataBytes: 1e9,
            requestsPerSecond: 1,
            requestsPerSecondPerNode: 1,
            cacheBytesPerNode: 1e8
        )
        input.access = .zipf(exponent: 1)
        let plan = try ShardPlan(input)
        let hits = plan.hitRate(cachedFraction: 0.10)
        #expect(hits > 0.8)
        // H(100 000) / H(1 000 000) = 12.0901… / 14.3927…
        #expect(abs(hits - 12.090_146_129_863_4 / 14.392_726_722_864) < 1e-9)
        #expect(plan.hitRate(cachedFraction: 1) == 1)
        #expect(plan.hitRate(cachedFraction: 0) == 0)
    }

    @Test func zipfShardedHitRates() throws {
        let plan = try coursePlan(access: .zipf(exponent: 1))
        #expect(plan.hitRateUnsharded > 0.08)
        #expect(plan.hitRateSharded > plan.hitRateUnsharded)
        #expect(plan.hitRateSharded < 1)
    }

    @Test func hotShardUnderZipf() throws {
        let plan = try coursePlan(access: .zipf(exponent: 1))
        #expect(abs(plan.hottestKeyShare - 1 / 14.392_726_722_864) < 1e-12)
        #expect(plan.hottestNodeLoadRatio > 1.5)
        #expect(plan.hottestNodeRequestsPerSecond > 1_000)
        // Replicas share the hot key's reads.
        let replicated = try coursePlan(access: .zipf(exponent: 1), replicas: 2)
        #expect(replicated.hottestNodeLoadRatio < plan.hottestNodeLoadRatio)
        #expect(replicated.hottestNodeLoadRatio > 1)
    }

    @Test func noHotShardUnderUniformAccess() throws {
        for replicas in [1, 2, 3] {
            let plan = try coursePlan(replicas: replicas)
            #expect(abs(plan.hottestNodeLoadRatio - 1) < 1e-9)
            #expect(abs(plan.hottestNodeRequestsPerSecond - 1_000) < 1e-6)
        }
    }

    @Test func invalidShardInputs() {
        let base = ShardPlan.Input(
            dataBytes: 1,
            requestsPerSecond: 1,
            requestsPerSecondPerNode: 1,
            cacheBytesPerNode: 1
        )
        var zeroRate = base
        zeroRate.requestsPerSecondPerNode = 0
        #expect(throws: ShardPlan.InputError.self) { try ShardPlan(zeroRate) }
        var noReplicas = base
        noReplicas.replicas = 0
        #expect(throws: ShardPlan.InputError.self) { try ShardPlan(noReplicas) }
        var flatZipf = base
        flatZipf.access = .zipf(exponent: 0)
        #expect(throws: ShardPlan.InputError.self) { try ShardPlan(flatZipf) }
    }

    // MARK: Scatter/gather

    @Test(arguments: [
        (0.99, [4.90, 9.56, 39.5, 63.4]),
        (0.98, [9.61, 18.3, 63.6, 86.7]),
    ])
    func courseScatterTable(leafProbability: Double, slowPercent: [Double]) throws {
        let input = ScatterPlan.Input(leafProbability: leafProbability, leafCounts: [5, 10, 50, 100])
        let rows = try ScatterPlan(input).compute().rows
        #expect(rows.map(\.leaves) == [5, 10, 50, 100])
        for (row, expected) in zip(rows, slowPercent) {
            // Three significant digits, as the table prints them.
            #expect(abs(row.slowProbability * 100 - expected) <= expected * 0.001 + 0.005)
            #expect(abs(row.fastProbability + row.slowProbability - 1) < 1e-12)
            #expect(row.requiredLeafProbability == nil)
        }
    }

    @Test func perLeafPercentileForARootTarget() throws {
        let input = ScatterPlan.Input(leafProbability: 0.999, leafCounts: [1, 10], rootTarget: 0.99)
        let plan = try ScatterPlan(input).compute()
        #expect(abs(plan.rows[0].requiredLeafProbability! - 0.99) < 1e-12)
        #expect(abs(plan.rows[1].requiredLeafProbability! - 0.998_995) < 1e-6)
        // 0.999^10 ≈ 0.990 045 meets 99 %, 0.999^11 ≈ 0.989 055 does not.
        #expect(plan.maxLeavesForTarget == 10)
        let perfect = try ScatterPlan(.init(leafProbability: 1, leafCounts: [100], rootTarget: 0.99)).compute()
        #expect(perfect.maxLeavesForTarget == nil)
        #expect(perfect.rows[0].slowProbability == 0)
    }

    @Test func invalidScatterInputs() {
        #expect(throws: ScatterPlan.InputError.self) { try ScatterPlan(.init(leafProbability: 0, leafCounts: [1])) }
        #expect(throws: ScatterPlan.InputError.self) { try ScatterPlan(.init(leafProbability: 1.1, leafCounts: [1])) }
        #expect(throws: ScatterPlan.InputError.self) { try ScatterPlan(.init(leafProbability: 0.9, leafCounts: [])) }
        #expect(throws: ScatterPlan.InputError.self) { try ScatterPlan(.init(leafProbability: 0.9, leafCounts: [0])) }
        #expect(throws: ScatterPlan.InputError.self) {
            try ScatterPlan(.init(leafProbability: 0.9, leafCounts: [1], rootTarget: 0))
        }
    }

    // MARK: Queues

    private func queue(_ input: QueuePlan.Input) throws -> QueuePlan.Result {
        try QueuePlan(input).compute()
    }

    @Test func mm1() throws {
        let plan = try queue(.init(arrivalRate: 0.5, serviceSeconds: 1, workers: 1))
        #expect(plan.stable)
        #expect(abs(plan.utilisation - 0.5) < 1e-12)
        #expect(abs(plan.waitProbability! - 0.5) < 1e-12)
        #expect(abs(plan.meanWaitSeconds! - 1) < 1e-12)
        #expect(abs(plan.meanResponseSeconds! - 2) < 1e-12)
        #expect(abs(plan.meanQueueLength! - 0.5) < 1e-12)
        #expect(plan.backlogGrowthPerSecond == nil)
    }

    @Test func mm2() throws {
        let plan = try queue(.init(arrivalRate: 1, serviceSeconds: 1, workers: 2))
        #expect(abs(plan.waitProbability! - 1.0 / 3) < 1e-12)
        #expect(abs(plan.meanWaitSeconds! - 1.0 / 3) < 1e-12)
        #expect(abs(QueuePlan.erlangB(workers: 2, load: 1) - 0.2) < 1e-12)
    }

    @Test func erlangCTableValue() {
        #expect(abs(QueuePlan.erlangC(workers: 10, load: 8) - 0.4092) < 5e-5)
        // The recursion stays finite where a^c / c! would overflow.
        let large = QueuePlan.erlangC(workers: 10_000, load: 9_900)
        #expect(large > 0 && large < 1)
    }

    @Test func sizesWorkersForAWaitTarget() throws {
        // a = 5: six workers wait about 29 ms on average, seven about 8 ms.
        let plan = try queue(.init(arrivalRate: 100, serviceSeconds: 0.05, waitTargetSeconds: 0.01))
        #expect(plan.workers == 7)
        #expect(plan.workersNeeded == 7)
        #expect(plan.meanWaitSeconds! <= 0.01)
        let six = try queue(.init(arrivalRate: 100, serviceSeconds: 0.05, workers: 6))
        #expect(six.meanWaitSeconds! > 0.01)
        // Without a target, sizing only keeps up.
        #expect(try queue(.init(arrivalRate: 100, serviceSeconds: 0.05)).workers == 6)
    }

    @Test func unstableQueueReportsTheBacklog() throws {
        let plan = try queue(.init(arrivalRate: 100, serviceSeconds: 0.05, workers: 4, capacity: 1_000))
        #expect(!plan.stable)
        #expect(plan.utilisation == 1.25)
        #expect(plan.backlogGrowthPerSecond == 20)
        #expect(plan.secondsToCapacity == 50)
        #expect(plan.waitProbability == nil && plan.meanWaitSeconds == nil && plan.meanResponseSeconds == nil)
        #expect(plan.workersNeeded == 6)
        #expect(plan.summary.contains("Unstable"))

        let saturated = try queue(.init(arrivalRate: 10, serviceSeconds: 0.5, workers: 5, capacity: 100))
        #expect(!saturated.stable)
        #expect(saturated.backlogGrowthPerSecond == 0)
        #expect(saturated.secondsToCapacity == nil)
        for value in [saturated.utilisation, saturated.offeredLoad] { #expect(value.isFinite) }
    }

    @Test func loadBeyondTheSearchBound() throws {
        let plan = try queue(.init(arrivalRate: 1e6, serviceSeconds: 1, waitTargetSeconds: 1))
        #expect(plan.workersNeeded == nil)
        #expect(!plan.stable)
        #expect(plan.backlogGrowthPerSecond == 1e6 - 1e5)
        #expect(plan.summary.contains("No count"))
    }

    @Test func invalidQueueInputs() {
        #expect(throws: QueuePlan.InputError.self) { try QueuePlan(.init(arrivalRate: 0, serviceSeconds: 1)) }
        #expect(throws: QueuePlan.InputError.self) { try QueuePlan(.init(arrivalRate: 1, serviceSeconds: 0)) }
        #expect(throws: QueuePlan.InputError.self) {
            try QueuePlan(.init(arrivalRate: 1, serviceSeconds: 1, workers: 0))
        }
        #expect(throws: QueuePlan.InputError.self) {
            try QueuePlan(.init(arrivalRate: 1, serviceSeconds: 1, waitTargetSeconds: 0))
        }
    }
}
