import CoreMetrics
import FlotillaServer

/// The cache's own gauges, refreshed before each scrape.
final class CacheMetrics: Sendable {
    private let items: Gauge
    private let bytes: Gauge
    private let limit: Gauge
    private let connections: Gauge
    private let evictions: MonotonicCounter
    private let hits: MonotonicCounter
    private let misses: MonotonicCounter
    private let refused: MonotonicCounter

    init(factory: any MetricsFactory) {
        hits = MonotonicCounter(
            "flotilla_cache_get_hits_total",
            help: "Keys found by reads (memcached's get_hits).",
            factory: factory
        )
        misses = MonotonicCounter(
            "flotilla_cache_get_misses_total",
            help: "Keys not found by reads (memcached's get_misses).",
            factory: factory
        )
        refused = MonotonicCounter(
            "flotilla_connections_refused_total",
            help: "Connections refused because --max-connections were open.",
            factory: factory
        )
        items = Gauge("flotilla_cache_items", help: "Items stored now.", factory: factory)
        bytes = Gauge(
            "flotilla_cache_bytes",
            help: "Bytes charged for the items stored now (keys, values, per-item overhead).",
            factory: factory
        )
        limit = Gauge("flotilla_cache_limit_bytes", help: "The bound on those bytes (--memory).", factory: factory)
        connections = Gauge("flotilla_connections", help: "Client connections open now.", factory: factory)
        evictions = MonotonicCounter(
            "flotilla_cache_evictions_total",
            help: "Items evicted to make room for others.",
            factory: factory
        )
    }

    func update(_ usage: CacheServer.Usage, limitBytes: Int) {
        items.record(usage.items)
        bytes.record(usage.bytes)
        limit.record(limitBytes)
        connections.record(usage.connections)
        hits.advance(to: usage.getHits)
        misses.advance(to: usage.getMisses)
        refused.advance(to: usage.refusedConnections)
        evictions.advance(to: usage.evictions)
    }
}
