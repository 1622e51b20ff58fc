import DequeModule
import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOPosix

/// Why a request to a shard got no reply.
enum ShardFailure: Error, Sendable {
    /// The shard is marked down.
    case down
    /// No reply within the deadline.
    case timeout
    /// Too many requests queued for the shard from this event loop.
    case overloaded
    /// The connection failed or closed before the reply.
    case connection
    /// The shard's bytes were not the protocol.
    case protocolError

    var message: String {
        switch self {
        case .down: "shard down"
        case .timeout: "shard timeout"
        case .overloaded: "shard queue full"
        case .connection: "shard connection failed"
        case .protocolError: "bad reply from shard"
        }
    }
}

typealias ShardCompletion = (Result<ShardReply, ShardFailure>) -> Void

/// Who gets a shard's reply. The common requests name their continuation here rather than in a
/// closure, so that they allocate no closure context per call.
enum ShardCallback {
    case closure(ShardCompletion)
    /// A single-key get/gets/gat/gats (`retrieveOne`).
    case readOne(ProxyConnectionHandler, ReadOne)
    /// One replica's copy of a replicated write (`replicate`), with the transport retries left.
    case write(ProxyConnectionHandler, WriteGather, replica: Int, retries: Int)

    func deliver(_ result: Result<ShardReply, ShardFailure>) {
        switch self {
        case .closure(let completion): completion(result)
        case .readOne(let handler, let read): handler.readOneAnswered(read, result)
        case .write(let handler, let gather, let replica, let retries):
            handler.writeAnswered(gather, replica: replica, retries: retries, result)
        }
    }
}

/// One request to a shard, waiting for its reply.
struct ShardCall {
    /// The request's bytes while it waits for the connection; once written, nil.
    var request: ByteBuffer?
    var start: UInt64
    var expected: ExpectedReply
    var deadline: UInt64
    var callback: ShardCallback
}

/// This event loop's pipelined connection to one shard. Everything here runs on that loop, so
/// requests from all the loop's clients share the connection without a lock, and a slow shard
/// only ever holds up its own queue.
final class ShardLink {
    let shard: Int
    private let loop: any EventLoop
    private let address: SocketAddress
    let health: ShardHealth
    private let timeoutNanoseconds: UInt64
    private let maxOutstanding: Int
    /// Requests to this shard from this loop: count, failures, latency (for `/v1/shards`).
    private let traffic: OperationRecorder.Shard
    /// The loop's write batching: flushes this link's requests once per tick.
    let writes: LoopWrites

    private var connection: ShardChannelHandler?
    private var connecting = false
    /// Requests are written and wait for `writes` to flush them.
    var flushPending = false
    /// Requests waiting for the connection to open.
    private var waiting = Deque<ShardCall>()
    /// Requests written and not yet answered.
    private var inFlight = Deque<ShardCall>()
    /// What each request in flight expects, in the same order: the decoder reads it for every
    /// reply, and a call is too big to copy for that. (Deques, not `CircularBuffer`s: those hold
    /// optionals, which Swift copies and destroys through generic value witnesses.)
    private var expectations = Deque<ExpectedReply>()

    init(
        shard: Int,
        loop: any EventLoop,
        address: SocketAddress,
        health: ShardHealth,
        configuration: ProxyConfiguration,
        traffic: OperationRecorder.Shard,
        writes: LoopWrites
    ) {
        self.shard = shard
        self.traffic = traffic
        self.writes = writes
        self.loop = loop
        self.address = address
        self.health = health
        self.timeoutNanoseconds = UInt64(max(configuration.shardTimeout.nanoseconds, 0))
        self.maxOutstanding = configuration.maxOutstandingPerShard
    }

    /// What the oldest request in flight expects: the next reply on the connection answers it.
    var nextExpected: ExpectedReply? { expectations.first }

    /// Requests queued or in flight: the load measure of "two random choices".
    var outstanding: Int { waiting.count + inFlight.count }

    /// Sends `request` and calls `completion` on this loop with the reply or the failure.
    func call(_ request: ByteBuffer, expecting expected: ExpectedReply, completion: @escaping ShardCompletion) {
        call(expecting: expected, callback: .closure(completion)) { $0.writeImmutableBuffer(request) }
    }

    /// Sends the request `write` puts into a buffer (the connection's own outbound buffer when it is
    /// open, so that the request needs no buffer of its own) and gives `callback` the reply or the
    /// failure, on this loop.
    func call(expecting expected: ExpectedReply, callback: ShardCallback, request write: (inout ByteBuffer) -> Void) {
        guard health.isLive(shard) else {
            traffic.record(shard, nanoseconds: 0, failed: true)
            callback.deliver(.failure(.down))
            return
        }
        guard outstanding < maxOutstanding else {
            traffic.record(shard, nanoseconds: 0, failed: true)
            callback.deliver(.failure(.overloaded))
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        var call = ShardCall(
            request: nil,
            start: now,
            expected: expected,
            deadline: now &+ timeoutNanoseconds,
            callback: callback
        )
        if let connection {
            connection.send(write)
            inFlight.append(call)
            expectations.append(expected)
            writes.requestWritten(self)
        } else {
            var bytes = ByteBuffer()
            write(&bytes)
            call.request = bytes
            waiting.append(call)
            connect()
        }
    }

    /// Sends the requests written since the last flush (`writes` calls it once per tick).
    func flush() {
        connection?.flushIfNeeded()
    }

    private func connect() {
        guard !connecting else { return }
        connecting = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.nanoseconds(Int64(timeoutNanoseconds)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ShardChannelHandler(link: bound.value))
                }
            }
            .connect(to: address)
            .whenComplete { result in
                let link = bound.value
                link.connecting = false
                switch result {
                case .success:
                    break  // the handler's channelActive takes over
                case .failure:
                    link.health.recordFailure(link.shard, reason: "connect failed")
                    link.failAll(.connection)
                }
            }
    }

    fileprivate func attached(_ handler: ShardChannelHandler) {
        connection = handler
        while var call = waiting.popFirst() {
            if let request = call.request { handler.send { $0.writeImmutableBuffer(request) } }
            call.request = nil
            inFlight.append(call)
            expectations.append(call.expected)
        }
        handler.flushIfNeeded()
    }

    fileprivate func detached(_ handler: ShardChannelHandler) {
        guard connection === handler else { return }
        connection = nil
        if outstanding > 0 { health.recordFailure(shard, reason: "connection closed") }
        failAll(.connection)
    }

    fileprivate func received(_ reply: ShardReply) {
        guard let call = inFlight.popFirst() else { return }
        expectations.removeFirst()
        health.recordSuccess(shard)
        traffic.record(shard, nanoseconds: NIODeadline.now().uptimeNanoseconds &- call.start, failed: false)
        call.callback.deliver(.success(reply))
    }

    private func failAll(_ failure: ShardFailure) {
        let calls = Array(inFlight) + Array(waiting)
        inFlight.removeAll()
        expectations.removeAll()
        waiting.removeAll()
        let now = NIODeadline.now().uptimeNanoseconds
        for call in calls {
            traffic.record(shard, nanoseconds: now &- call.start, failed: true)
            call.callback.deliver(.failure(failure))
        }
    }

    /// Fails the shard's requests past their deadline; the connection is replaced, since replies
    /// still on their way would be out of step.
    func expire(now: UInt64) {
        let oldest = inFlight.first?.deadline ?? waiting.first?.deadline
        guard let oldest, oldest < now else { return }
        health.recordFailure(shard, reason: "timeout")
        let handler = connection
        connection = nil
        failAll(.timeout)
        handler?.close()
    }

    /// Closes the connection (shutdown).
    func close() {
        connection?.close()
    }
}

/// The channel handler of a shard connection: writes requests, decodes replies in order.
final class ShardChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let link: ShardLink
    private var context: ChannelHandlerContext?
    private var decoder = MemcacheReplyDecoder()
    private var inbound: ByteBuffer?
    private var outbound = ByteBuffer()
    private var closed = false

    init(link: ShardLink) {
        self.link = link
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbound = context.channel.allocator.buffer(capacity: 4096)
    }

    func channelActive(context: ChannelHandlerContext) {
        link.attached(self)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        link.detached(self)
        context.fireChannelInactive()
    }

    /// Writes a request into the outbound buffer, flushed by `flushIfNeeded`.
    func send(_ write: (inout ByteBuffer) -> Void) {
        write(&outbound)
    }

    func flushIfNeeded() {
        guard outbound.readableBytes > 0, let context, !closed else { return }
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        outbound.clear()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        // The clients' replies completed by this read leave in one write each, after it.
        link.writes.beginShardRead()
        defer { link.writes.endShardRead() }
        var bytes = unwrapInboundIn(data)
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        do {
            while let expected = link.nextExpected,
                let reply = try decoder.decode(&inbound!, expecting: expected)
            {
                link.received(reply)
                if closed { return }
            }
        } catch {
            link.health.recordFailure(link.shard, reason: "\(error)")
            close()
            return
        }
        if inbound!.readableBytes == 0 {
            inbound = nil
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        context?.close(promise: nil)
    }
}
