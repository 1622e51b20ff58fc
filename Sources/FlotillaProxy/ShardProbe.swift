import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOPosix

/// A one-off connection to a shard for the prober: checks a down shard answers, and repairs the
/// keys a shard missed, one request at a time.
final class ShardProbe: Sendable {
    private let channel: any Channel
    private let replies: ReplyCollector

    private init(channel: any Channel, replies: ReplyCollector) {
        self.channel = channel
        self.replies = replies
    }

    static func connect(
        to address: SocketAddress,
        group: any EventLoopGroup,
        timeout: Duration
    ) async throws -> ShardProbe {
        let collector = ReplyCollector()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanoseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(to: address)
            .get()
        return ShardProbe(channel: channel, replies: collector)
    }

    /// Whether a server at `address` answers `version` on a new connection within `timeout`.
    static func answers(at address: SocketAddress, group: any EventLoopGroup, timeout: Duration) async -> Bool {
        guard let probe = try? await connect(to: address, group: group, timeout: timeout) else { return false }
        defer { probe.close() }
        let reply = try? await probe.request(ByteBuffer(string: "version\r\n"), expecting: .version, timeout: timeout)
        if case .line(let line) = reply, line.status == .version { return true }
        return false
    }

    /// Sends one request and waits for its reply.
    func request(_ bytes: ByteBuffer, expecting expected: ExpectedReply, timeout: Duration) async throws -> ShardReply {
        try await pipeline([bytes], expecting: expected, timeout: timeout)[0]
    }

    /// Sends requests back to back in one write and waits for all their replies, in order.
    func pipeline(
        _ requests: [ByteBuffer],
        expecting expected: ExpectedReply,
        timeout: Duration
    ) async throws
        -> [ShardReply]
    {
        guard !requests.isEmpty else { return [] }
        let replies = channel.eventLoop.makePromise(of: [ShardReply].self)
        let collector = self.replies
        let count = requests.count
        var batch = ByteBuffer()
        for var request in requests { batch.writeBuffer(&request) }
        do {
            try await channel.eventLoop.submit { collector.expect(replies, expected, count: count) }.get()
            try await channel.writeAndFlush(batch)
        } catch {
            // A connection closed meanwhile: the promise must still complete (a second failure
            // of it, from the collector, is ignored).
            replies.fail(error)
            throw error
        }
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            replies.fail(ShardFailure.timeout)
        }
        defer { timer.cancel() }
        return try await replies.futureResult.get()
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Decodes the replies to the requests in flight.
private final class ReplyCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    // Touched only on the channel's event loop.
    private var waiting: (promise: EventLoopPromise<[ShardReply]>, expected: ExpectedReply, count: Int)?
    private var collected: [ShardReply] = []
    private var buffer: ByteBuffer?
    private var decoder = MemcacheReplyDecoder()

    func expect(_ promise: EventLoopPromise<[ShardReply]>, _ expected: ExpectedReply, count: Int) {
        waiting = (promise, expected, count)
        collected = []
        collected.reserveCapacity(count)
        deliver()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffer == nil { buffer = bytes } else { buffer!.writeBuffer(&bytes) }
        deliver()
    }

    private func deliver() {
        guard let (promise, expected, count) = waiting, buffer != nil else { return }
        do {
            while collected.count < count, let reply = try decoder.decode(&buffer!, expecting: expected) {
                collected.append(reply)
            }
            guard collected.count == count else { return }
            waiting = nil
            promise.succeed(collected)
        } catch {
            waiting = nil
            promise.fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting?.promise.fail(ShardFailure.connection)
        waiting = nil
    }
}
