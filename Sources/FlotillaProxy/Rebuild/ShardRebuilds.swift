import CoreMetrics
import FlotillaServer
import Synchronization

/// Per shard: the process last seen, the restarts found, and the rebuild of a restarted shard
/// from its peers (`ShardRepairer.rebuild`), for the repairer, the admin API and `/metrics`.
final class ShardRebuilds: Sendable {
    /// One shard's record.
    struct Record: Sendable {
        /// The process last seen (nil before the first probe answered).
        var identity: ShardIdentity?
        /// Restarts found since the proxy started.
        var restarts: UInt64 = 0
        /// A restart was found and the rebuild has not finished since.
        var needed = false
        /// A rebuild is copying keys now.
        var running = false
        /// Keys listed by the peers during the current or last rebuild.
        var scanned: UInt64 = 0
        /// Keys of this shard copied to it during the current or last rebuild.
        var copied: UInt64 = 0
        /// Rebuilds finished, and how long the last one took.
        var completed: UInt64 = 0
        var lastDuration: Duration?
        /// Peers that failed during rebuilds (each is listed again), and the last error.
        var failures: UInt64 = 0
        var lastError: String?
    }

    private let records: Mutex<[Record]>
    private let metrics: [Metrics]

    /// The families operators alert on, one series per shard.
    private struct Metrics: Sendable {
        let restarts: Counter
        let copied: Counter
        let completed: Counter
        let failed: Counter
        let running: Gauge

        init(shard: String, factory: any MetricsFactory) {
            let dimensions = [("shard", shard)]
            restarts = Counter(
                "flotilla_proxy_shard_restarts_total",
                help: "Restarts of the shard the proxy found (new pid, or uptime too short).",
                dimensions: dimensions,
                factory: factory
            )
            copied = Counter(
                "flotilla_proxy_rebuild_keys_copied_total",
                help: "Keys copied to the shard by rebuilds after its restarts.",
                dimensions: dimensions,
                factory: factory
            )
            completed = Counter(
                "flotilla_proxy_rebuilds_total",
                help: "Rebuilds of the shard that finished.",
                dimensions: dimensions,
                factory: factory
            )
            failed = Counter(
                "flotilla_proxy_rebuild_peer_failures_total",
                help: "Peers that failed during the shard's rebuilds.",
                dimensions: dimensions,
                factory: factory
            )
            running = Gauge(
                "flotilla_proxy_rebuild_running",
                help: "1 while a rebuild copies keys to the shard, else 0.",
                dimensions: dimensions,
                factory: factory
            )
        }
    }

    init(shardNames: [String], metricsFactory: any MetricsFactory = NOOPMetricsHandler.instance) {
        records = Mutex(shardNames.map { _ in Record() })
        metrics = shardNames.map { Metrics(shard: $0, factory: metricsFactory) }
    }

    /// The shard answered a probe as `identity`. True when it is another process than the one
    /// seen before: it restarted, and needs a rebuild.
    func observe(_ shard: Int, _ identity: ShardIdentity) -> Bool {
        let restarted = records.withLock { records in
            defer { records[shard].identity = identity }
            guard let earlier = records[shard].identity, identity.isRestart(since: earlier) else { return false }
            records[shard].restarts += 1
            records[shard].needed = true
            return true
        }
        if restarted { metrics[shard].restarts.increment() }
        return restarted
    }

    /// Whether a restart of `shard` was found and its rebuild has not finished.
    func isNeeded(_ shard: Int) -> Bool {
        records.withLock { $0[shard].needed }
    }

    /// A rebuild of `shard` starts.
    func begin(_ shard: Int) {
        records.withLock { records in
            records[shard].running = true
            records[shard].scanned = 0
            records[shard].copied = 0
        }
        metrics[shard].running.record(1)
    }

    /// Keys listed by a peer, and those of them copied to `shard`.
    func progress(_ shard: Int, scanned: Int, copied: Int) {
        records.withLock { records in
            records[shard].scanned += UInt64(scanned)
            records[shard].copied += UInt64(copied)
        }
        if copied > 0 { metrics[shard].copied.increment(by: copied) }
    }

    /// The rebuild of `shard` ended: every key its live peers hold for it was copied.
    func finish(_ shard: Int, after duration: Duration) {
        records.withLock { records in
            records[shard].running = false
            records[shard].needed = false
            records[shard].completed += 1
            records[shard].lastDuration = duration
        }
        metrics[shard].running.record(0)
        metrics[shard].completed.increment()
    }

    /// Listing or copying from a peer failed during the rebuild of `shard`; that peer is tried
    /// again, the rebuild goes on.
    func peerFailed(_ shard: Int, reason: String) {
        records.withLock { records in
            records[shard].failures += 1
            records[shard].lastError = reason
        }
        metrics[shard].failed.increment()
    }

    /// The rebuild of `shard` stopped: with `abandoned`, none is tried again until its next
    /// restart (a peer cannot list its keys, or kept failing); otherwise the shard went down and
    /// its next recovery rebuilds it from the beginning.
    func stopped(_ shard: Int, reason: String, abandoned: Bool) {
        records.withLock { records in
            records[shard].running = false
            records[shard].lastError = reason
            if abandoned { records[shard].needed = false }
        }
        metrics[shard].running.record(0)
    }

    func snapshot() -> [Record] {
        records.withLock { $0 }
    }
}
