import DequeModule
import FlotillaCore
import NIOCore
import NIOPosix

/// What a pipelined link speaks: how a reply is decoded, what each request expects of its reply,
/// and who is given it. The memcache proxy's shard links are one (`MemcacheLink`); the balancer's
/// and the search root's HTTP/1.1 keep-alive upstreams are others.
public protocol PipelinedLinkProtocol: Sendable {
    /// What the reply to a request looks like, known when it is sent (memcache: a line, values…).
    associatedtype Expectation
    associatedtype Reply
    associatedtype Decoder
    /// Who is given the reply. A value, not a closure, so that the common calls allocate nothing.
    associatedtype Callback

    static func makeDecoder() -> Decoder
    /// The next reply in `buffer`, nil until it is whole; throws when the bytes are not the protocol.
    static func decode(_ decoder: inout Decoder, _ buffer: inout ByteBuffer, expecting: Expectation) throws -> Reply?
    static func deliver(_ result: consuming Result<Reply, LinkFailure>, to callback: Callback)
    /// Decodes and delivers the replies in `bytes`. Leave it to the default: it is here so that the
    /// conforming module runs the read path specialized (the channel handler's own methods are
    /// called by NIO through a generic witness).
    static func read(_ bytes: ByteBuffer, on handler: PipelinedChannelHandler<Self>)
}

extension PipelinedLinkProtocol {
    @inlinable
    public static func read(_ bytes: ByteBuffer, on handler: PipelinedChannelHandler<Self>) {
        handler.readReplies(bytes)
    }
}

/// Why a request on a link got no reply.
public enum LinkFailure: Error, Sendable, Hashable {
    /// The upstream is marked down.
    case down
    /// No reply within the deadline.
    case timeout
    /// Too many requests queued for the upstream from this event loop.
    case overloaded
    /// The connection failed or closed before the reply.
    case connection
    /// The upstream's bytes were not the protocol.
    case protocolError

    /// The failure in words, naming the upstream as the role calls it ("shard timeout").
    public func message(for upstream: String) -> String {
        switch self {
        case .down: "\(upstream) down"
        case .timeout: "\(upstream) timeout"
        case .overloaded: "\(upstream) queue full"
        case .connection: "\(upstream) connection failed"
        case .protocolError: "bad reply from \(upstream)"
        }
    }
}

/// What a link reports of its upstream, and asks before sending: the upstream's health, shared by
/// every event loop (the proxy's `ShardHealth`).
public protocol LinkHealth: AnyObject, Sendable {
    func isLive(_ upstream: Int) -> Bool
    func recordSuccess(_ upstream: Int)
    func recordFailure(_ upstream: Int, reason: String)
}

/// When a request in flight was sent, and when it times out (nanoseconds of uptime).
@usableFromInline
struct LinkTiming {
    @usableFromInline var start: UInt64
    @usableFromInline var deadline: UInt64

    @inlinable
    init(start: UInt64, deadline: UInt64) {
        self.start = start
        self.deadline = deadline
    }
}

/// One request waiting for its link's connection to open.
@usableFromInline
struct LinkCall<P: PipelinedLinkProtocol> {
    /// The request's bytes while it waits for the connection; once written, nil.
    @usableFromInline var request: ByteBuffer?
    @usableFromInline var start: UInt64
    @usableFromInline var expected: P.Expectation
    @usableFromInline var deadline: UInt64
    @usableFromInline var callback: P.Callback

    @inlinable
    init(
        request: ByteBuffer?,
        start: UInt64,
        expected: P.Expectation,
        deadline: UInt64,
        callback: consuming P.Callback
    ) {
        self.request = request
        self.start = start
        self.expected = expected
        self.deadline = deadline
        self.callback = callback
    }
}

/// This event loop's pipelined connection to one upstream. Everything here runs on that loop, so
/// requests from all the loop's clients share the connection without a lock, and a slow upstream
/// only ever holds up its own queue: requests past `maxOutstanding` fail at once (`overloaded`),
/// requests past their deadline fail (`timeout`) and replace the connection.
///
/// Generic over what it speaks, and inlinable, so that the user's module specializes it: the
/// per-request path runs no generic code.
public final class PipelinedLink<P: PipelinedLinkProtocol>: LoopFlushable {
    /// The upstream's index, for `health` and `traffic`.
    public let upstream: Int
    @usableFromInline let loop: any EventLoop
    @usableFromInline let address: SocketAddress
    @usableFromInline let health: any LinkHealth
    @usableFromInline let timeoutNanoseconds: UInt64
    @usableFromInline let maxOutstanding: Int
    /// Requests to this upstream from this loop: count, failures, latency.
    @usableFromInline let traffic: OperationRecorder.Shard
    /// The loop's write batching: flushes this link's requests once per tick.
    public let writes: LoopWrites

    @usableFromInline var connection: PipelinedChannelHandler<P>?
    @usableFromInline var connecting = false
    public var flushPending = false
    /// Requests waiting for the connection to open.
    @usableFromInline var waiting = Deque<LinkCall<P>>()
    /// Requests written and not yet answered, oldest first: who gets each reply, what it must look
    /// like (the decoder reads it for every reply), and when it was sent. Three deques of concrete
    /// elements rather than one of `LinkCall<P>`, whose copies go through generic value witnesses
    /// even specialized (callgrind: about 300 instructions per request). (Deques, not
    /// `CircularBuffer`s: those hold optionals, copied the same slow way.)
    @usableFromInline var inFlight = Deque<P.Callback>()
    @usableFromInline var expectations = Deque<P.Expectation>()
    @usableFromInline var timings = Deque<LinkTiming>()

    public init(
        upstream: Int,
        loop: any EventLoop,
        address: SocketAddress,
        health: any LinkHealth,
        timeout: Duration,
        maxOutstanding: Int,
        traffic: OperationRecorder.Shard,
        writes: LoopWrites
    ) {
        self.upstream = upstream
        self.loop = loop
        self.address = address
        self.health = health
        self.timeoutNanoseconds = UInt64(max(timeout.nanoseconds, 0))
        self.maxOutstanding = maxOutstanding
        self.traffic = traffic
        self.writes = writes
    }

    /// What the oldest request in flight expects: the next reply on the connection answers it.
    @inlinable
    var nextExpected: P.Expectation? { expectations.first }

    /// Requests queued or in flight: the load measure of "two random choices".
    @inlinable
    public var outstanding: Int { waiting.count + inFlight.count }

    /// Queues a written request's callback.
    @inlinable
    func appendInFlight(_ callback: consuming P.Callback, expected: P.Expectation, timing: LinkTiming) {
        inFlight.append(callback)
        expectations.append(expected)
        timings.append(timing)
    }

    /// Sends the request `write` puts into a buffer (the connection's own outbound buffer when it is
    /// open, so that the request needs no buffer of its own) and gives `callback` the reply or the
    /// failure, on this loop. A failure known at once (down, overloaded) is given before this returns.
    @inlinable
    public func call(
        expecting expected: P.Expectation,
        callback: consuming P.Callback,
        request write: (inout ByteBuffer) -> Void
    ) {
        guard health.isLive(upstream) else {
            traffic.record(upstream, nanoseconds: 0, failed: true)
            P.deliver(.failure(.down), to: callback)
            return
        }
        guard outstanding < maxOutstanding else {
            traffic.record(upstream, nanoseconds: 0, failed: true)
            P.deliver(.failure(.overloaded), to: callback)
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        if let connection {
            connection.send(write)
            appendInFlight(
                callback,
                expected: expected,
                timing: LinkTiming(start: now, deadline: now &+ timeoutNanoseconds)
            )
            writes.requestWritten(self)
        } else {
            var bytes = ByteBuffer()
            write(&bytes)
            waiting.append(
                LinkCall(
                    request: bytes,
                    start: now,
                    expected: expected,
                    deadline: now &+ timeoutNanoseconds,
                    callback: callback
                )
            )
            connect()
        }
    }

    /// Sends the requests written since the last flush (`writes` calls it once per tick).
    public func flush() {
        connection?.flushIfNeeded()
    }

    @usableFromInline
    func connect() {
        guard !connecting else { return }
        connecting = true
        let bound = NIOLoopBound(self, eventLoop: loop)
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.nanoseconds(Int64(timeoutNanoseconds)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PipelinedChannelHandler(link: bound.value))
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
                    link.health.recordFailure(link.upstream, reason: "connect failed")
                    link.failAll(.connection)
                }
            }
    }

    func attached(_ handler: PipelinedChannelHandler<P>) {
        connection = handler
        while let call = waiting.popFirst() {
            if let request = call.request { handler.send { $0.writeImmutableBuffer(request) } }
            appendInFlight(
                call.callback,
                expected: call.expected,
                timing: LinkTiming(start: call.start, deadline: call.deadline)
            )
        }
        handler.flushIfNeeded()
    }

    func detached(_ handler: PipelinedChannelHandler<P>) {
        guard connection === handler else { return }
        connection = nil
        if outstanding > 0 { health.recordFailure(upstream, reason: "connection closed") }
        failAll(.connection)
    }

    @inlinable
    func received(_ reply: consuming P.Reply) {
        guard let callback = inFlight.popFirst() else { return }
        expectations.removeFirst()
        let timing = timings.removeFirst()
        health.recordSuccess(upstream)
        traffic.record(upstream, nanoseconds: NIODeadline.now().uptimeNanoseconds &- timing.start, failed: false)
        P.deliver(.success(reply), to: callback)
    }

    @usableFromInline
    func failAll(_ failure: LinkFailure) {
        let calls = zip(inFlight, timings).map { ($0, $1.start) } + waiting.map { ($0.callback, $0.start) }
        inFlight.removeAll()
        expectations.removeAll()
        timings.removeAll()
        waiting.removeAll()
        let now = NIODeadline.now().uptimeNanoseconds
        for (callback, start) in calls {
            traffic.record(upstream, nanoseconds: now &- start, failed: true)
            P.deliver(.failure(failure), to: callback)
        }
    }

    /// Fails the requests past their deadline; the connection is replaced, since replies still on
    /// their way would be out of step.
    public func expire(now: UInt64) {
        let oldest = timings.first?.deadline ?? waiting.first?.deadline
        guard let oldest, oldest < now else { return }
        health.recordFailure(upstream, reason: "timeout")
        let handler = connection
        connection = nil
        failAll(.timeout)
        handler?.close()
    }

    /// Closes the connection (shutdown).
    public func close() {
        connection?.close()
    }
}

@available(*, unavailable)
extension PipelinedLink: Sendable {}

/// The channel handler of a link's connection: writes requests, decodes replies in order.
public final class PipelinedChannelHandler<P: PipelinedLinkProtocol>: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    @usableFromInline let link: PipelinedLink<P>
    @usableFromInline var context: ChannelHandlerContext?
    @usableFromInline var decoder: P.Decoder
    @usableFromInline var inbound: ByteBuffer?
    @usableFromInline var outbound = ByteBuffer()
    @usableFromInline var closed = false

    @usableFromInline
    init(link: PipelinedLink<P>) {
        self.link = link
        self.decoder = P.makeDecoder()
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbound = context.channel.allocator.buffer(capacity: 4096)
    }

    public func channelActive(context: ChannelHandlerContext) {
        link.attached(self)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        link.detached(self)
        context.fireChannelInactive()
    }

    /// Writes a request into the outbound buffer, flushed by `flushIfNeeded`.
    @inlinable
    func send(_ write: (inout ByteBuffer) -> Void) {
        write(&outbound)
    }

    @usableFromInline
    func flushIfNeeded() {
        guard outbound.readableBytes > 0, let context, !closed else { return }
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        outbound.clear()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        P.read(unwrapInboundIn(data), on: self)
    }

    /// Decodes the replies in `bytes` (and what came before them) and gives each to its call.
    @inlinable
    public func readReplies(_ bytes: ByteBuffer) {
        guard !closed else { return }
        // The clients' replies completed by this read leave in one write each, after it.
        link.writes.beginUpstreamRead()
        defer { link.writes.endUpstreamRead() }
        var bytes = bytes
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        do {
            while let expected = link.nextExpected,
                let reply = try P.decode(&decoder, &inbound!, expecting: expected)
            {
                link.received(reply)
                if closed { return }
            }
        } catch {
            link.health.recordFailure(link.upstream, reason: "\(error)")
            close()
            return
        }
        if inbound!.readableBytes == 0 {
            inbound = nil
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close()
    }

    @usableFromInline
    func close() {
        guard !closed else { return }
        closed = true
        context?.close(promise: nil)
    }
}

@available(*, unavailable)
extension PipelinedChannelHandler: Sendable {}
