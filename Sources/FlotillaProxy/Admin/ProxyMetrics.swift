import CoreMetrics
import FlotillaServer

/// What operators alert on in the proxy, refreshed before each scrape: each shard's state and
/// hints, and the proxy's fallback reads and replication failures.
final class ProxyMetrics: Sendable {
    private struct Shard: Sendable {
        let up: Gauge
        let recovering: Gauge
        let pendingHints: Gauge
        let replayedHints: MonotonicCounter
    }

    private let shards: [Shard]
    private let fallbackReads: MonotonicCounter
    private let replicationFailures: MonotonicCounter
    private let hintsQueued: MonotonicCounter

    init(shardNames: [String], factory: any MetricsFactory) {
        shards = shardNames.map { name in
            let dimensions = [("shard", name)]
            return Shard(
                up: Gauge(
                    "flotilla_proxy_shard_up",
                    help: "1 while the shard serves reads and writes, else 0 (down or recovering).",
                    dimensions: dimensions,
                    factory: factory
                ),
                recovering: Gauge(
                    "flotilla_proxy_shard_recovering",
                    help: "1 while the shard takes writes but no reads (repair or rebuild), else 0.",
                    dimensions: dimensions,
                    factory: factory
                ),
                pendingHints: Gauge(
                    "flotilla_proxy_hints_pending",
                    help: "Keys the shard missed, kept to repair it.",
                    dimensions: dimensions,
                    factory: factory
                ),
                replayedHints: MonotonicCounter(
                    "flotilla_proxy_hints_replayed_total",
                    help: "Hinted keys repaired on the shard.",
                    dimensions: dimensions,
                    factory: factory
                )
            )
        }
        fallbackReads = MonotonicCounter(
            "flotilla_proxy_fallback_reads_total",
            help: "Reads answered by another replica after a miss or a failure.",
            factory: factory
        )
        replicationFailures = MonotonicCounter(
            "flotilla_proxy_replication_failures_total",
            help: "Writes that some replica failed.",
            factory: factory
        )
        hintsQueued = MonotonicCounter(
            "flotilla_proxy_hints_queued_total",
            help: "Hints kept for shards that missed a write.",
            factory: factory
        )
    }

    func update(health: [ShardHealth.Snapshot], counters: ProxyCounters) {
        for (shard, state) in zip(shards, health) {
            shard.up.record(!state.down && !state.recovering ? 1 : 0)
            shard.recovering.record(state.recovering ? 1 : 0)
            shard.pendingHints.record(state.pendingHints)
            shard.replayedHints.advance(to: state.hintsReplayed)
        }
        fallbackReads.advance(to: counters[.fallbackReads])
        replicationFailures.advance(to: counters[.replicationFailures])
        hintsQueued.advance(to: counters[.hintsQueued])
    }
}
