import FlotillaCore
import FlotillaMemcache
import Logging
import NIOCore
import Synchronization

/// What every connection of the proxy shares: settings, placement, shard health and counters.
final class ProxyContext: Sendable {
    let configuration: ProxyConfiguration
    let router: ShardRouter
    let health: ShardHealth
    /// Restarts found, and the rebuilds of restarted shards.
    let rebuilds: ShardRebuilds
    let version: String
    let startedAt = ContinuousClock.now
    let counters = ProxyCounters()

    init(
        configuration: ProxyConfiguration,
        router: ShardRouter,
        health: ShardHealth,
        rebuilds: ShardRebuilds? = nil,
        version: String
    ) {
        self.configuration = configuration
        self.router = router
        self.health = health
        self.rebuilds = rebuilds ?? ShardRebuilds(shardNames: configuration.shards.map(\.address))
        self.version = version
    }

    /// The key's live replicas, the ones its writes go to (first is the primary), walking past
    /// down shards. A recovering shard is live, but placed after the others: the primary, whose
    /// CAS uniques the client sees, is one that serves reads.
    func liveReplicas(_ key: ByteBuffer) -> ReplicaSet {
        let live = key.withUnsafeReadableBytes { bytes in
            router.replicaSet(for: bytes) { self.health.isLive($0) }
        }
        guard health.anyRecovering else { return live }
        var ordered = ReplicaSet(live.lazy.filter { self.health.isReadable($0) })
        for shard in live where !health.isReadable(shard) { ordered.append(shard) }
        return ordered
    }

    /// The key's replicas to read from: the live ones, less a recovering shard (it may still miss
    /// writes it is being repaired for), unless it is the only one.
    func readReplicas(_ key: ByteBuffer) -> ReplicaSet {
        let live = key.withUnsafeReadableBytes { bytes in
            router.replicaSet(for: bytes) { self.health.isLive($0) }
        }
        guard health.anyRecovering else { return live }
        let readable = ReplicaSet(live.lazy.filter { self.health.isReadable($0) })
        return readable.isEmpty ? live : readable
    }

    /// The key's replicas when every shard is up.
    func homeReplicas(_ key: ByteBuffer) -> ReplicaSet {
        key.withUnsafeReadableBytes { bytes in router.replicaSet(for: bytes) }
    }
}

/// Proxy-wide counters for `stats` and the admin API.
final class ProxyCounters: Sendable {
    enum Counter: Int, CaseIterable {
        case getHits, getMisses, fallbackReads, readRepairs, replicationFailures, hintsQueued
    }

    private let values: [Cell] = Counter.allCases.map { _ in Cell() }

    private final class Cell: Sendable {
        let value = Atomic<UInt64>(0)
    }

    func add(_ counter: Counter, _ amount: UInt64 = 1) {
        values[counter.rawValue].value.wrappingAdd(amount, ordering: .relaxed)
    }

    subscript(_ counter: Counter) -> UInt64 {
        values[counter.rawValue].value.load(ordering: .relaxed)
    }
}
