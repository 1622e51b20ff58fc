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
        MetricHelp.describe([
            "flotilla_cache_items": "Items stored now.",
            "flotilla_cache_bytes": "Bytes charged for the items stored now (keys, values, per-item overhead).",
            "flotilla_cache_limit_bytes": "The bound on those bytes (--memory).",
            "flotilla_connections": "Client connections open now.",
            "flotilla_cache_evictions_total": "Items evicted to make room for others.",
            "flotilla_cache_get_hits_total": "Keys found by reads (memcached's get_hits).",
            "flotilla_cache_get_misses_total": "Keys not found by reads (memcached's get_misses).",
            "flotilla_connections_refused_total": "Connections refused because --max-connections were open.",
        ])
        hits = MonotonicCounter(label: "flotilla_cache_get_hits_total", factory: factory)
        misses = MonotonicCounter(label: "flotilla_cache_get_misses_total", factory: factory)
        refused = MonotonicCounter(label: "flotilla_connections_refused_total", factory: factory)
        items = Gauge(label: "flotilla_cache_items", factory: factory)
        bytes = Gauge(label: "flotilla_cache_bytes", factory: factory)
        limit = Gauge(label: "flotilla_cache_limit_bytes", factory: factory)
        connections = Gauge(label: "flotilla_connections", factory: factory)
        evictions = MonotonicCounter(label: "flotilla_cache_evictions_total", factory: factory)
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
