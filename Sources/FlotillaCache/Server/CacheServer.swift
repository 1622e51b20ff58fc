import CoreMetrics
import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Logging
import NIOCore
import ServiceLifecycle

/// `flotilla cache`: a memcached-compatible server (text and meta protocols) with a bounded
/// LRU store, as a `Service`.
public final class CacheServer: Role, Sendable {
    public typealias Operation = MemcacheOperation
    public static let name = "cache"
    /// memcached's 11211, plus 100.
    public static let defaultAdminPort = 11311

    private let server: TCPServer
    private let store: StripedStore
    private let context: CacheContext
    private let metrics: CacheMetrics
    /// Requests not yet fully received, across connections (`--request-memory`).
    private let requestMemory: RequestMemory

    public init(configuration: Configuration, environment: RoleEnvironment) {
        let recorder = environment.recorder
        self.metrics = CacheMetrics(factory: environment.metricsFactory)
        let store = StripedStore(limitBytes: configuration.memoryLimit, maxItemSize: configuration.maxItemSize)
        let connections = ConnectionCounters()
        let context = CacheContext(configuration: configuration, connections: connections, threads: environment.threads)
        let decoderConfiguration = MemcacheRequestDecoder.Configuration(maxItemSize: configuration.maxItemSize)
        let requestMemory = RequestMemory(
            limit: configuration.requestMemory,
            metricsFactory: environment.metricsFactory
        )
        self.requestMemory = requestMemory
        var serverConfiguration = TCPServer.Configuration(listen: configuration.listen)
        serverConfiguration.maxConnections = configuration.maxConnections
        serverConfiguration.rejectionMessage = "ERROR Too many open connections\r\n"
        serverConfiguration.drainTimeout = environment.drainTimeout
        self.store = store
        self.context = context
        self.server = TCPServer(
            configuration: serverConfiguration,
            group: environment.group,
            readiness: environment.readiness,
            logger: environment.logger,
            connections: connections
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                let handler = MemcacheConnectionHandler(
                    decoder: MemcacheRequestDecoder(configuration: decoderConfiguration),
                    engine: CacheEngine(store: store, context: context),
                    recorder: recorder.shard(on: channel.eventLoop),
                    requestMemory: requestMemory
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
        public var getHits: UInt64
        public var getMisses: UInt64
        public var refusedConnections: UInt64
    }

    /// Refreshes the cache's gauges; the admin listener calls it before each scrape.
    public func refreshMetrics() async {
        metrics.update(usage, limitBytes: context.configuration.memoryLimit)
        requestMemory.refreshMetrics()
    }

    public var usage: Usage {
        let totals = store.totals()
        return Usage(
            items: totals.items,
            bytes: totals.bytes,
            evictions: totals.counters.evictions,
            connections: context.connections.current,
            getHits: context.totals[.getHits],
            getMisses: context.totals[.getMisses],
            refusedConnections: UInt64(context.connections.refused)
        )
    }
}
