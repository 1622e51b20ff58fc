import CoreMetrics
import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Logging
import NIOCore
import ServiceLifecycle

/// `flotilla cache`: a memcached-compatible server (text and meta protocols) with a bounded
/// LRU store, as a `Service`.
public final class CacheServer: Service, Sendable {
    /// Settings of the cache role. Defaults are memcached's.
    public struct Configuration: Sendable {
        /// Data listener (default 127.0.0.1:11211).
        public var listen = HostPort(host: "127.0.0.1", port: 11211)
        /// Memory for items, keys and per-item overhead (default 64 MiB).
        public var memoryLimit = 64 << 20
        /// Largest item (default 1 MiB).
        public var maxItemSize = 1 << 20
        /// Most open connections (default 1024).
        public var maxConnections = 1024
        /// Longest wait for open connections on shutdown (default 10 s).
        public var drainTimeout: Duration = .seconds(10)

        public init() {}
    }

    /// The operations the cache records, in `MemcacheOperation` order.
    public static let operations = MemcacheOperation.allCases.map(\.name)

    private let server: TCPServer
    private let store: StripedStore
    private let context: CacheContext
    private let metrics: CacheMetrics

    public init(
        configuration: Configuration,
        group: any EventLoopGroup,
        threads: Int,
        readiness: Readiness,
        recorder: OperationRecorder,
        metricsFactory: any MetricsFactory,
        logger: Logger
    ) {
        self.metrics = CacheMetrics(factory: metricsFactory)
        let store = StripedStore(limitBytes: configuration.memoryLimit, maxItemSize: configuration.maxItemSize)
        let connections = ConnectionCounters()
        let context = CacheContext(configuration: configuration, connections: connections, threads: threads)
        let decoderConfiguration = MemcacheRequestDecoder.Configuration(maxItemSize: configuration.maxItemSize)
        var serverConfiguration = TCPServer.Configuration(listen: configuration.listen)
        serverConfiguration.maxConnections = configuration.maxConnections
        serverConfiguration.rejectionMessage = "ERROR Too many open connections\r\n"
        serverConfiguration.drainTimeout = configuration.drainTimeout
        self.store = store
        self.context = context
        self.server = TCPServer(
            configuration: serverConfiguration,
            group: group,
            readiness: readiness,
            logger: logger,
            connections: connections
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                let handler = MemcacheConnectionHandler(
                    decoder: MemcacheRequestDecoder(configuration: decoderConfiguration),
                    engine: CacheEngine(store: store, context: context),
                    recorder: recorder.shard(on: channel.eventLoop)
                )
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    public func run() async throws {
        try await server.run()
    }

    /// Current storage figures, for metrics and tests.
    public struct Usage: Sendable {
        public var items: Int
        public var bytes: Int
        public var evictions: UInt64
        public var connections: Int
    }

    /// Refreshes the cache's gauges; the admin listener calls it before each scrape.
    public func refreshMetrics() {
        metrics.update(usage, limitBytes: context.configuration.memoryLimit)
    }

    public var usage: Usage {
        let totals = store.totals()
        return Usage(
            items: totals.items,
            bytes: totals.bytes,
            evictions: totals.counters.evictions,
            connections: context.connections.current
        )
    }
}
