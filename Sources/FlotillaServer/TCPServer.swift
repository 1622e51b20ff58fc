import FlotillaCore
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A TCP listener as a `Service`: binds, reports its address, hands each connection to the
/// role's pipeline, and on graceful shutdown marks the role unready, stops accepting, lets
/// open connections finish (they receive `ChannelShouldQuiesceEvent`) and returns within the
/// drain timeout.
public final class TCPServer: Service, Sendable {
    /// How a TCP listener behaves. Defaults are memcached's where it has one.
    public struct Configuration: Sendable {
        /// Address to listen on. Port 0 picks a free port, reported in the `listening` log line.
        public var listen: HostPort
        /// Most connections open at once (memcached `-c`, default 1024); above it a new
        /// connection gets `rejectionMessage` and is closed.
        public var maxConnections: Int = 1024
        /// Bytes written to a connection refused for exceeding `maxConnections`.
        public var rejectionMessage: String = ""
        /// Longest wait for open connections to finish after shutdown begins (default 10 s).
        public var drainTimeout: Duration = .seconds(10)
        /// Pending-connection queue length (default 1024).
        public var backlog: Int32 = 1024
        /// Whether binding the listener makes the role ready (default true). A role whose readiness
        /// follows its upstreams (the proxy: a shard that answers) sets it with `Readiness.set`.
        public var readyWhenBound = true

        public init(listen: HostPort) { self.listen = listen }
    }

    public typealias ChildInitializer = @Sendable (any Channel) -> EventLoopFuture<Void>

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let readiness: Readiness
    private let logger: Logger
    private let childInitializer: ChildInitializer
    /// Open, accepted and refused connection counts.
    public let connections: ConnectionCounters
    /// Open connections, so that a drain that times out can close what is left.
    private let openChannels = Mutex<[ObjectIdentifier: any Channel]>([:])

    public init(
        configuration: Configuration,
        group: any EventLoopGroup,
        readiness: Readiness,
        logger: Logger,
        connections: ConnectionCounters = ConnectionCounters(),
        childInitializer: @escaping ChildInitializer
    ) {
        self.connections = connections
        self.configuration = configuration
        self.group = group
        self.readiness = readiness
        self.logger = logger
        self.childInitializer = childInitializer
    }

    public func run() async throws {
        let quiesce = ServerQuiescingHelper(group: group)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 512 * 1024))
            .childChannelInitializer { [self] channel in
                let connections = self.connections
                connections.total.add(1, ordering: .relaxed)
                let open = connections.open.add(1, ordering: .relaxed).newValue
                let id = ObjectIdentifier(channel)
                self.openChannels.withLock { $0[id] = channel }
                channel.closeFuture.whenComplete { _ in
                    connections.open.subtract(1, ordering: .relaxed)
                    self.openChannels.withLock { _ = $0.removeValue(forKey: id) }
                }
                guard open <= self.configuration.maxConnections else {
                    connections.rejected.add(1, ordering: .relaxed)
                    return channel.eventLoop.makeCompletedFuture {
                        let handler = RejectConnectionHandler(message: self.configuration.rejectionMessage)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                return self.childInitializer(channel)
            }

        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            throw ListenError(flag: "--listen", address: configuration.listen, underlying: error)
        }
        let address = channel.localAddress.map(Self.describe) ?? "?"
        logger.info("listening", metadata: ["listener": "data", "address": "\(address)"])
        readiness.bound("data", address: address)
        if configuration.readyWhenBound { readiness.markReady() }

        try? await gracefulShutdown()

        readiness.markDraining()
        let open = connections.current
        logger.info("draining", metadata: ["connections.open": "\(open)"])
        let drained = channel.eventLoop.makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: drained)
        let finished = await withTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                (try? await drained.futureResult.get()) != nil
            }
            tasks.addTask { [timeout = configuration.drainTimeout] in
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await tasks.next() ?? false
            if first {
                tasks.cancelAll()  // ends the timer
            } else {
                // The drain timed out, or the role is cancelled (another service failed, such as an
                // admin listener that could not bind): close what is left, which also completes
                // `drained`.
                if !Task.isCancelled {
                    logger.warning(
                        "drain timed out, closing remaining connections",
                        metadata: ["connections.open": "\(connections.current)"]
                    )
                }
                for channel in openChannels.withLock({ Array($0.values) }) {
                    channel.close(mode: .all, promise: nil)
                }
            }
            await tasks.waitForAll()
            return first
        }
        if finished { logger.info("drained") }
    }

    /// `127.0.0.1:11211` or `[::1]:11211`.
    public static func describe(_ address: SocketAddress) -> String {
        let host = address.ipAddress ?? "?"
        let port = address.port ?? 0
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Connection counts of a listener, readable from any thread.
public final class ConnectionCounters: Sendable {
    let open = Atomic<Int>(0)
    let total = Atomic<UInt64>(0)
    let rejected = Atomic<UInt64>(0)

    public init() {}

    /// Connections open now.
    public var current: Int { open.load(ordering: .relaxed) }
    /// Connections accepted since start.
    public var accepted: UInt64 { total.load(ordering: .relaxed) }
    /// Connections refused because the limit was reached.
    public var refused: UInt64 { rejected.load(ordering: .relaxed) }

    /// memcached's `stats reset`: the totals since start (accepted, refused) start again from zero.
    public func resetTotals() {
        total.store(0, ordering: .relaxed)
        rejected.store(0, ordering: .relaxed)
    }
}

/// Answers a connection over the limit with the role's refusal and closes it.
final class RejectConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let message: String

    init(message: String) { self.message = message }

    func channelActive(context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(string: message)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension RejectConnectionHandler: Sendable {}

/// The data listener could not be opened (address in use, no such interface, permission).
/// A listener that could not bind, told as the person who gave the address would look for it:
/// `--admin 127.0.0.1:9100: cannot listen: address already in use`.
public struct ListenError: Error, CustomStringConvertible {
    /// The flag that set the address (`--listen`, `--admin`).
    public var flag: String
    public var address: HostPort
    public var underlying: any Error

    public init(flag: String, address: HostPort, underlying: any Error) {
        self.flag = flag
        self.address = address
        self.underlying = underlying
    }

    public var description: String {
        let reason: String
        if let io = underlying as? IOError {
            reason = String(cString: strerror(io.errnoCode)).lowercased()
        } else {
            reason = "\(underlying)"
        }
        return "\(flag) \(address): cannot listen: \(reason)"
    }

    /// Runs `body`, which binds `address` and serves; an error before `isBound()` is a bind error.
    public static func whileBinding(
        flag: String,
        address: HostPort,
        isBound: @Sendable () -> Bool,
        _ body: () async throws -> Void
    ) async throws {
        do {
            try await body()
        } catch  where !isBound() {
            throw ListenError(flag: flag, address: address, underlying: error)
        }
    }
}
