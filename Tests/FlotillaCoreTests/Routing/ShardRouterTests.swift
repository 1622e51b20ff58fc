import FlotillaCore
import Testing

@Suite("Shard router: ring placement, replicas and failover")
struct ShardRouterTests {
    static func shards(_ count: Int, weights: [Int]? = nil) -> [ShardSpec] {
        (0..<count).map { ShardSpec(host: "10.0.0.\($0 + 1)", port: 11211, weight: weights?[$0] ?? 1) }
    }

    static func keys(_ count: Int) -> [String] {
        (0..<count).map { "key:\($0)" }
    }

    @Test func replicasAreDistinctAndStartWithThePrimary() throws {
        let router = try ShardRouter(shards: Self.shards(5), replicas: 3)
        for key in Self.keys(5_000) {
            let replicas = router.replicas(for: key)
            #expect(replicas.count == 3)
            #expect(Set(replicas).count == 3)
            #expect(replicas.first == router.primary(for: key))
        }
    }

    @Test func everyKeyFormGivesTheSamePlacement() throws {
        let router = try ShardRouter(shards: Self.shards(4), replicas: 2)
        for key in ["a", "key:17", "user/42/photo", "été", String(repeating: "k", count: 250)] {
            let bytes = Array(key.utf8)
            let expected = router.replicaSet(for: key)
            #expect(router.replicaSet(for: bytes) == expected)
            #expect(router.replicaSet(for: bytes[...]) == expected)
            #expect(router.replicaSet(for: Substring(key)) == expected)
            #expect(bytes.withUnsafeBytes { router.replicaSet(for: $0) } == expected)
            #expect(bytes.withUnsafeBytes { router.primary(for: $0) } == expected.primary)
            #expect(router.replicaSet(forHash: router.hash(key)) == expected)
            #expect(router.replicas(for: bytes) == Array(expected))
        }
    }

    @Test func addingAFifthShardMovesAboutAFifthOfTheKeysAllToIt() throws {
        let keys = Self.keys(50_000)
        let four = try ShardRouter(shards: Self.shards(4))
        let five = try ShardRouter(shards: Self.shards(5))
        var moved = 0
        for key in keys {
            let before = four.primary(for: key)
            let after = five.primary(for: key)
            if before != after {
                moved += 1
                #expect(after == 4, "key \(key) moved between old shards \(before) → \(after)")
            }
        }
        let fraction = Double(moved) / Double(keys.count)
        #expect(abs(fraction - 0.2) < 0.03, "moved \(fraction)")
    }

    @Test func removingAShardMovesOnlyItsKeys() throws {
        let keys = Self.keys(20_000)
        let all = Self.shards(5)
        let full = try ShardRouter(shards: all, replicas: 2)
        var remaining = all
        remaining.remove(at: 2)
        let reduced = try ShardRouter(shards: remaining, replicas: 2)
        for key in keys {
            let before = full.replicaSet(for: key).map { all[$0].address }
            let after = reduced.replicaSet(for: key).map { remaining[$0].address }
            if before.contains(all[2].address) {
                #expect(after.first == before.first(where: { $0 != all[2].address }))
            } else {
                #expect(after == before, "key \(key) moved although its replicas did not include the removed shard")
            }
        }
    }

    @Test func placementDoesNotDependOnListOrder() throws {
        let shards = Self.shards(4, weights: [1, 2, 1, 3])
        let forward = try ShardRouter(shards: shards, replicas: 3)
        let backward = try ShardRouter(shards: shards.reversed(), replicas: 3)
        for key in Self.keys(2_000) {
            let a = forward.replicaSet(for: key).map { forward.shards[$0] }
            let b = backward.replicaSet(for: key).map { backward.shards[$0] }
            #expect(a == b)
        }
    }

    @Test func equalShardsShareKeysEvenly() throws {
        let router = try ShardRouter(shards: Self.shards(4))
        let shares = router.primaryShares(of: Self.keys(100_000))
        for (shard, share) in shares.enumerated() {
            #expect(abs(share - 0.25) < 0.03, "shard \(shard) holds \(share)")
        }
        let ownership = router.ownership()
        #expect(abs(ownership.reduce(0, +) - 1) < 1e-9)
        for (shard, share) in ownership.enumerated() {
            #expect(abs(share - 0.25) < 0.03, "shard \(shard) owns \(share) of the ring")
        }
    }

    @Test func weightsSetTheShares() throws {
        let weights = [1, 2, 3, 4]
        let router = try ShardRouter(shards: Self.shards(4, weights: weights))
        let shares = router.primaryShares(of: Self.keys(100_000))
        for (shard, share) in shares.enumerated() {
            let expected = Double(weights[shard]) / 10
            #expect(abs(share - expected) < 0.03, "shard \(shard) of weight \(weights[shard]) holds \(share)")
        }
    }

    @Test func aDownShardsKeysMoveToTheNextLiveShard() throws {
        let router = try ShardRouter(shards: Self.shards(5), replicas: 2)
        // With one more replica, the walk shows which shard comes after a key's replica set.
        let wider = try ShardRouter(shards: Self.shards(5), replicas: 3)
        var affected = 0
        for key in Self.keys(10_000) {
            let healthy = router.replicaSet(for: key)
            let degraded = router.replicaSet(for: key, isLive: { $0 != 2 })
            #expect(degraded.count == 2)
            #expect(!degraded.contains(2))
            if healthy.contains(2) {
                affected += 1
                #expect(Array(degraded) == wider.replicaSet(for: key).filter { $0 != 2 })
            } else {
                #expect(degraded == healthy)
            }
        }
        #expect(affected > 0)
    }

    @Test func fewerLiveShardsThanReplicasGivesAllLiveOnes() throws {
        let router = try ShardRouter(shards: Self.shards(4), replicas: 3)
        for key in Self.keys(1_000) {
            let live = router.replicaSet(for: key, isLive: { $0 == 1 || $0 == 3 })
            #expect(Set(live) == [1, 3])
            #expect(live.count == 2)
            #expect(router.replicaSet(for: key, isLive: { _ in false }).isEmpty)
        }
    }

    @Test func livenessIsAskedOncePerShard() throws {
        let router = try ShardRouter(shards: Self.shards(6), replicas: 4)
        var asked: [Int] = []
        let replicas = router.replicaSet(
            for: "key:1",
            isLive: { shard in
                asked.append(shard)
                return shard.isMultiple(of: 2)
            }
        )
        #expect(Set(asked).count == asked.count)
        #expect(asked.count == 6)
        #expect(Set(replicas) == [0, 2, 4])
    }

    @Test func moreThanSixtyFourShards() throws {
        let router = try ShardRouter(shards: Self.shards(100), replicas: 8)
        for key in Self.keys(200) {
            let replicas = router.replicaSet(for: key, isLive: { $0 >= 90 })
            #expect(Set(replicas).count == 8)
            #expect(replicas.allSatisfy { $0 >= 90 })
        }
    }

    @Test func oneShard() throws {
        let router = try ShardRouter(shards: Self.shards(1), replicas: 1)
        #expect(router.replicas(for: "anything") == [0])
        #expect(router.ownership().count == 1)
        #expect(abs(router.ownership()[0] - 1) < 1e-9)
    }

    @Test(arguments: [
        (0, 4, "replicas 0 must be from 1 to 4"),
        (5, 4, "replicas 5 must be from 1 to 4"),
        (2, 1, "replicas 2 must be from 1 to 1 (1 shard,"),
        (9, 10, "replicas 9 must be from 1 to 8"),
    ])
    func rejectsBadReplicaCounts(replicas: Int, shardCount: Int, fragment: String) {
        #expect {
            try ShardRouter(shards: Self.shards(shardCount), replicas: replicas)
        } throws: { error in
            guard let error = error as? ShardRouterError else { return false }
            return error.code == .invalidReplicas && error.message.contains(fragment)
        }
    }

    @Test func rejectsBadShardLists() {
        func code(_ shards: [ShardSpec], _ distribution: ShardRouter.Distribution = .ring) -> ShardRouterErrorCode? {
            do {
                _ = try ShardRouter(shards: shards, distribution: distribution, replicas: 1)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code([]) == .noShards)
        #expect(code([ShardSpec(host: "a", port: 1), ShardSpec(host: "A", port: 1, weight: 2)]) == .duplicateShard)
        #expect(code([ShardSpec(host: "a", port: 1, weight: 0)]) == .invalidWeight)
        #expect(code([ShardSpec(host: "a", port: 1, weight: 5_000)]) == .ringTooLarge)
        #expect(code([ShardSpec(host: "a", port: 1, weight: 5_000)], .ketama(hash: .md5)) == nil)
        #expect(code((0..<4_097).map { ShardSpec(host: "h\($0)", port: 1) }) == .tooManyShards)
    }

    @Test func replicaSetValueSemantics() {
        var set = ReplicaSet([3, 1, 4])
        #expect(set.primary == 3)
        #expect(Array(set) == [3, 1, 4])
        #expect(set.description == "[3, 1, 4]")
        #expect(set == ReplicaSet([3, 1, 4]))
        #expect(set != ReplicaSet([3, 1]))
        set.append(65_535)
        #expect(set.last == 65_535)
        set.removeAll()
        #expect(set.isEmpty && set.primary == nil)
        #expect(ReplicaSet(0..<8).isFull)
    }
}
