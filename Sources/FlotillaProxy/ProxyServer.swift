import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// `flotilla cache-proxy`: a memcached-protocol proxy that shards keys over cache servers and
/// replicates each on N of them, as a `Service`.
public final class ProxyServer: Service, Sendable {
    /// The operations the proxy records, in `MemcacheOperation` order.
    public static let operations = MemcacheOperation.allCases.map(\.name)

    private let server: TCPServer
    private let context: ProxyContext
    private let group: any EventLoopGroup
    private let addresses: [SocketAddress]
    private let logger: Logger

    public init(
        configuration: ProxyConfiguration,
        group: any EventLoopGroup,
        readiness: Readiness,
        recorder: OperationRecorder,
        version: String,
        logger: Logger
    ) throws {
        let router = try ShardRouter(
            shards: configuration.shards,
            distribution: configuration.distribution,
            replicas: configuration.replicas
        )
        let addresses = try configuration.shards.map { shard in
            do {
                return try SocketAddress.makeAddressResolvingHost(shard.host, port: shard.port)
            } catch {
                throw ProxyConfigurationError("cannot resolve shard \(shard.address): \(error)")
            }
        }
        let health = ShardHealth(
            shardNames: configuration.shards.map(\.address),
            failureLimit: configuration.failureLimit,
            maxHints: configuration.maxHintsPerShard,
            logger: logger
        )
        let context = ProxyContext(configuration: configuration, router: router, health: health, version: version)
        var loopShards: [ObjectIdentifier: NIOLoopBound<LoopShards>] = [:]
        for loop in group.makeIterator() {
            loopShards[ObjectIdentifier(loop)] = try loop.submit {
                let links = addresses.indices.map { index in
                    ShardLink(
                        shard: index,
                        loop: loop,
                        address: addresses[index],
                        health: health,
                        configuration: configuration
                    )
                }
                return NIOLoopBound(
                    LoopShards(links: links, loop: loop, timeout: configuration.shardTimeout),
                    eventLoop: loop
                )
            }.wait()
        }
        let perLoop = loopShards
        let decoderConfiguration = MemcacheRequestDecoder.Configuration(maxItemSize: configuration.maxItemSize)
        var serverConfiguration = TCPServer.Configuration(listen: configuration.listen)
        serverConfiguration.maxConnections = configuration.maxConnections
        serverConfiguration.rejectionMessage = "ERROR Too many open connections\r\n"
        serverConfiguration.drainTimeout = configuration.drainTimeout
        self.context = context
        self.group = group
        self.addresses = addresses
        self.logger = logger
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
                    context: context,
                    shards: shards.value,
                    recorder: recorder.shard(on: channel.eventLoop)
                )
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await self.server.run() }
            tasks.addTask { await self.probeDownShards() }
            // The prober ends with the listener: graceful shutdown cancels it.
        }
    }

    /// Brings back shards marked down: a probe with backoff (100 ms doubling to 2 s, jittered);
    /// when one answers, the writes it missed are replayed in order (or, if some were lost to
    /// a full hint queue, the shard is flushed so that it cannot serve stale data), then it serves
    /// again.
    private func probeDownShards() async {
        var nextProbe: [Int: (at: ContinuousClock.Instant, backoff: Duration)] = [:]
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let now = ContinuousClock.now
            for shard in context.health.downShards() {
                let entry = nextProbe[shard] ?? (now, .milliseconds(100))
                guard entry.at <= now else { continue }
                if await restore(shard) {
                    nextProbe[shard] = nil
                } else {
                    let backoff = min(entry.backoff * 2, .seconds(2))
                    let jitter = Duration.milliseconds(
                        Int64.random(in: 0...Int64(backoff.components.seconds * 250 + 50))
                    )
                    nextProbe[shard] = (ContinuousClock.now + backoff + jitter, backoff)
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// One probe of a down shard; true when it serves again.
    private func restore(_ shard: Int) async -> Bool {
        let timeout = context.configuration.shardTimeout
        do {
            let client = try await ShardProbe.connect(to: addresses[shard], group: group, timeout: timeout)
            defer { client.close() }
            guard try await client.roundTrip(ByteBuffer(string: "version\r\n"), timeout: timeout).hasPrefix("VERSION")
            else { return false }
            let (hints, overflowed) = context.health.takeHints(shard)
            if overflowed {
                logger.warning(
                    "shard missed more writes than the hint queue holds: flushing it before it serves",
                    metadata: ["shard": "\(context.configuration.shards[shard].address)"]
                )
                _ = try await client.roundTrip(ByteBuffer(string: "flush_all\r\n"), timeout: timeout)
            } else {
                for hint in hints {
                    _ = try await client.roundTrip(hint.request, timeout: timeout)
                }
            }
            context.health.markUp(shard, replayed: overflowed ? 0 : hints.count)
            return true
        } catch {
            return false
        }
    }

    /// Per-shard state, for the admin API.
    public struct ShardStatus: Sendable {
        public var address: String
        public var up: Bool
        public var pendingHints: Int
        public var hintsReplayed: UInt64
        public var hintsDropped: UInt64
        public var timesMarkedDown: UInt64
    }

    public func shardStatus() -> [ShardStatus] {
        context.health.snapshot().enumerated().map { index, state in
            ShardStatus(
                address: context.configuration.shards[index].address,
                up: !state.down,
                pendingHints: state.pendingHints,
                hintsReplayed: state.hintsReplayed,
                hintsDropped: state.hintsDropped,
                timesMarkedDown: state.markedDown
            )
        }
    }

    /// The shards of `key`, primary first, as routed now (down shards skipped).
    public func route(_ key: String) -> [String] {
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
