import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// `flotilla cache-proxy`: a memcached-protocol proxy that shards keys over cache servers and
/// replicates each on N of them, as a `Service`.
public final class ProxyServer: Role, Sendable {
    public typealias Operation = MemcacheOperation
    public static let name = "cache-proxy"
    /// The data port's neighbourhood (22122, nutcracker's), clear of nutcracker's stats port 22222.
    public static let defaultAdminPort = 22322

    private let server: TCPServer
    private let context: ProxyContext
    private let group: any EventLoopGroup
    private let addresses: [SocketAddress]
    private let logger: Logger
    /// Requests to each shard, by shard index.
    private let traffic: OperationRecorder
    private let loopShards: [NIOLoopBound<LoopShards>]
    /// Brings shards marked down back, and repairs the keys shards missed.
    private let repairer: ShardRepairer
    /// Client requests not yet fully received, across connections (`--request-memory`).
    private let requestMemory: RequestMemory
    /// Shard states, hints, fallback reads and replication failures on `/metrics`.
    private let metrics: ProxyMetrics
    /// Shard request rates for `/v1/shards`, sampled once a second while the proxy runs.
    let shardRates = RateWindow()

    public init(configuration: ProxyConfiguration, environment: RoleEnvironment) throws {
        let group = environment.group
        let readiness = environment.readiness
        let recorder = environment.recorder
        let logger = environment.logger
        let version = "1.6.18-flotilla-proxy-\(FlotillaVersion.current)"
        let router = try ShardRouter(
            shards: configuration.shards,
            distribution: configuration.distribution,
            replicas: configuration.replicas
        )
        let addresses = try configuration.shards.map { shard in
            do {
                return try SocketAddress.makeAddressResolvingHost(shard.host, port: shard.port)
            } catch {
                throw ProxyConfigurationError("--shards: cannot resolve \(shard.address): \(error)")
            }
        }
        // Two names for one server would put both replicas of a key on it: every address each
        // name resolves to counts (localhost is 127.0.0.1 and ::1).
        var servers: [String: String] = [:]
        for shard in configuration.shards {
            for server in Self.resolvedAddresses(shard) {
                if let first = servers[server], first != shard.address {
                    throw ProxyConfigurationError(
                        "--shards: \(first) and \(shard.address) are the same server (\(server)); each shard must be another"
                    )
                }
                servers[server] = shard.address
            }
        }
        let health = ShardHealth(
            shardNames: configuration.shards.map(\.address),
            failureLimit: configuration.failureLimit,
            maxHints: configuration.maxHintsPerShard,
            logger: logger
        )
        let rebuilds = ShardRebuilds(
            shardNames: configuration.shards.map(\.address),
            metricsFactory: environment.metricsFactory
        )
        let context = ProxyContext(
            configuration: configuration,
            router: router,
            health: health,
            rebuilds: rebuilds,
            version: version
        )
        let traffic = OperationRecorder(operations: configuration.shards.map(\.address), group: group)
        var loopShards: [ObjectIdentifier: NIOLoopBound<LoopShards>] = [:]
        for loop in group.makeIterator() {
            loopShards[ObjectIdentifier(loop)] = try loop.submit {
                let writes = LoopWrites(loop: loop)
                let links = addresses.indices.map { index in
                    ShardLink(
                        upstream: index,
                        loop: loop,
                        address: addresses[index],
                        health: health,
                        timeout: configuration.shardTimeout,
                        maxOutstanding: configuration.maxOutstandingPerShard,
                        traffic: traffic.shard(on: loop),
                        writes: writes
                    )
                }
                return NIOLoopBound(
                    LoopShards(links: links, writes: writes, loop: loop, timeout: configuration.shardTimeout),
                    eventLoop: loop
                )
            }.wait()
        }
        let perLoop = loopShards
        let decoderConfiguration = MemcacheRequestDecoder.Configuration(maxItemSize: configuration.maxItemSize)
        let requestMemory = RequestMemory(
            limit: configuration.requestMemory,
            metricsFactory: environment.metricsFactory
        )
        self.requestMemory = requestMemory
        self.metrics = ProxyMetrics(
            shardNames: configuration.shards.map(\.address),
            factory: environment.metricsFactory
        )
        var serverConfiguration = TCPServer.Configuration(listen: configuration.listen)
        serverConfiguration.maxConnections = configuration.maxConnections
        serverConfiguration.rejectionMessage = "ERROR Too many open connections\r\n"
        serverConfiguration.drainTimeout = environment.drainTimeout
        // Ready once a shard answered the first probes (`ShardRepairer.updateReadiness`).
        serverConfiguration.readyWhenBound = false
        self.context = context
        self.traffic = traffic
        self.loopShards = Array(loopShards.values)
        self.group = group
        self.addresses = addresses
        self.logger = logger
        self.repairer = ShardRepairer(
            context: context,
            addresses: addresses,
            group: group,
            readiness: readiness,
            logger: logger
        )
        self.server = TCPServer(
            configuration: serverConfiguration,
            group: group,
            readiness: readiness,
            logger: logger
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                guard let shards = perLoop[ObjectIdentifier(channel.eventLoop)] else {
                    throw ProxyConfigurationError("connection on an event loop outside the proxy's group")
                }
                let handler = ProxyConnectionHandler(
                    decoder: MemcacheRequestDecoder(configuration: decoderConfiguration),
                    proxy: context,
                    shards: shards.value,
                    recorder: recorder.shard(on: channel.eventLoop),
                    requestMemory: requestMemory
                )
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    /// Every `IP:PORT` the shard's host resolves to (getaddrinfo, TCP).
    static func resolvedAddresses(_ shard: ShardSpec) -> Set<String> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(shard.host, String(shard.port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(list) }
        var addresses: Set<String> = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if let address = current.pointee.ai_addr,
                getnameinfo(address, current.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
                    == 0
            {
                addresses.insert(
                    "\(String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(shard.port)"
                )
            }
            entry = current.pointee.ai_next
        }
        return addresses
    }

    /// Refreshes the proxy's gauges; the admin listener calls it before each scrape.
    public func refreshMetrics() async {
        requestMemory.refreshMetrics()
        metrics.update(health: context.health.snapshot(), counters: context.counters)
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await self.server.run() }
            tasks.addTask { await self.repairer.run() }
            tasks.addTask { await self.sampleShardRates() }
            // The repairer and the sampler end with the listener: graceful shutdown cancels them.
        }
    }

    /// Samples the shards' request totals once a second, for their rates on `/v1/shards`.
    private func sampleShardRates() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.shardRates.record(await self.traffic.totals())
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Per-shard state for `/v1/shards`: health, traffic from every event loop, outstanding requests.
    func shardStates() async -> [ShardAdminState] {
        let health = context.health.snapshot()
        let rebuilds = context.rebuilds.snapshot()
        let traffic = await traffic.snapshot()
        var outstanding = Array(repeating: 0, count: health.count)
        for bound in loopShards {
            let counts = try? await bound.eventLoop.submit { bound.value.links.map(\.outstanding) }.get()
            for (index, count) in (counts ?? []).enumerated() { outstanding[index] += count }
        }
        return health.indices.map { index in
            ShardAdminState(
                address: context.configuration.shards[index].address,
                up: !health[index].down && !health[index].recovering,
                recovering: health[index].recovering,
                traffic: traffic[index],
                outstanding: outstanding[index],
                pendingHints: health[index].pendingHints,
                hintsReplayed: health[index].hintsReplayed,
                timesMarkedDown: health[index].markedDown,
                rebuild: rebuilds[index]
            )
        }
    }

    /// The shards of `key`, primary first, as routed now (down shards skipped).
    func route(key: String) -> [String] {
        var buffer = ByteBuffer()
        buffer.writeString(key)
        return context.liveReplicas(buffer).map { context.configuration.shards[$0].address }
    }
}

/// A bad proxy setting, described for the person who gave it.
public struct ProxyConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
