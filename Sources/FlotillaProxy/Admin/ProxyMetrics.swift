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
        MetricHelp.describe([
            "flotilla_proxy_shard_up": "1 while the shard serves reads and writes, else 0 (down or recovering).",
            "flotilla_proxy_shard_recovering":
                "1 while the shard takes writes but no reads (repair or rebuild), else 0.",
            "flotilla_proxy_hints_pending": "Keys the shard missed, kept to repair it.",
            "flotilla_proxy_hints_replayed_total": "Hinted keys repaired on the shard.",
            "flotilla_proxy_fallback_reads_total": "Reads answered by another replica after a miss or a failure.",
            "flotilla_proxy_replication_failures_total": "Writes that some replica failed.",
            "flotilla_proxy_hints_queued_total": "Hints kept for shards that missed a write.",
        ])
        shards = shardNames.map { name in
            let dimensions = [("shard", name)]
            return Shard(
                up: Gauge(label: "flotilla_proxy_shard_up", dimensions: dimensions, factory: factory),
                recovering: Gauge(label: "flotilla_proxy_shard_recovering", dimensions: dimensions, factory: factory),
                pendingHints: Gauge(label: "flotilla_proxy_hints_pending", dimensions: dimensions, factory: factory),
                replayedHints: MonotonicCounter(
                    label: "flotilla_proxy_hints_replayed_total",
                    dimensions: dimensions,
                    factory: factory
                )
            )
        }
        fallbackReads = MonotonicCounter(label: "flotilla_proxy_fallback_reads_total", factory: factory)
        replicationFailures = MonotonicCounter(label: "flotilla_proxy_replication_failures_total", factory: factory)
        hintsQueued = MonotonicCounter(label: "flotilla_proxy_hints_queued_total", factory: factory)
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
