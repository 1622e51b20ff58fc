import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOExtras

/// One client connection: decodes pipelined requests, runs them through the engine and writes
/// the replies once per read batch.
///
/// Bounded: the decoder bounds lines and values, replies are flushed every `flushThreshold`
/// bytes, and when the client does not read its replies the handler stops reading its requests
/// until the socket drains. On `ChannelShouldQuiesceEvent` (shutdown) it finishes the request
/// in progress and closes.
final class MemcacheConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Replies are written out once this many bytes are pending, even mid-batch.
    static let flushThreshold = 256 * 1024

    private var decoder: MemcacheRequestDecoder
    private var engine: CacheEngine
    private let recorder: OperationRecorder.Shard
    private var inbound: ByteBuffer?
    private var outbound: ByteBuffer
    /// The peer is not reading: hold requests and reads until the channel is writable again.
    private var paused = false
    private var pendingRead = false
    private var draining = false
    private var closing = false
    /// An `lru_crawler metadump` being written, a piece at a time as the client reads it.
    private var metadump: CacheEngine.Metadump?
    /// This connection's share of what the role holds for requests not yet fully received.
    private var requestMemory: RequestMemory.Share

    init(
        decoder: MemcacheRequestDecoder,
        engine: CacheEngine,
        recorder: OperationRecorder.Shard,
        requestMemory: RequestMemory
    ) {
        self.decoder = decoder
        self.engine = engine
        self.recorder = recorder
        self.requestMemory = RequestMemory.Share(of: requestMemory)
        self.outbound = ByteBuffer()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        outbound = context.channel.allocator.buffer(capacity: 4096)
    }

    func channelActive(context: ChannelHandlerContext) {
        engine.connection = engine.context.registry.add(
            remote: context.channel.remoteAddress,
            local: context.channel.localAddress,
            now: engine.clock.now
        )
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        engine.counters.add(.bytesRead, UInt64(bytes.readableBytes))
        engine.connection?.touch(now: engine.clock.now)
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        process(context: context)
        // Also when paused, where `process` returned before reading anything.
        chargeRequestMemory(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushReplies(context: context)
        engine.context.totals.commit(&engine.counters)
        closeIfDrained(context: context)
    }

    private func process(context: ChannelHandlerContext) {
        guard !paused, !closing else { return }
        // A metadump in progress goes first: the requests after it wait for its end.
        guard metadump == nil || continueMetadump(context: context), inbound != nil else { return }
        while let request = decoder.decode(buffer: &inbound!) {
            let start = NIODeadline.now().uptimeNanoseconds
            let outcome = engine.execute(request, into: &outbound)
            let elapsed = NIODeadline.now().uptimeNanoseconds &- start
            recorder.record(outcome.operation.rawValue, nanoseconds: elapsed, failed: outcome.failed)
            if let dump = outcome.metadump {
                metadump = dump
                guard continueMetadump(context: context) else { break }
                continue
            }
            if outcome.closesConnection {
                closing = true
                flushReplies(context: context)
                context.close(promise: nil)
                return
            }
            if outbound.readableBytes >= Self.flushThreshold {
                flushReplies(context: context)
                if !context.channel.isWritable {
                    paused = true
                    break
                }
            }
        }
        if inbound!.readableBytes == 0 {
            inbound = nil
        } else if inbound!.readerIndex > 64 * 1024 {
            inbound!.discardReadBytes()
        }
        chargeRequestMemory(context: context)
    }

    /// Writes the metadump in progress while the client reads it; true once it ended. A dump
    /// pauses the connection when the client stops reading, and also after every
    /// `metadumpTurn` bytes, to let the event loop serve other connections before it goes on.
    private func continueMetadump(context: ChannelHandlerContext) -> Bool {
        var written = 0
        while !engine.continueMetadump(&metadump!, bytes: Self.flushThreshold, into: &outbound) {
            written += outbound.readableBytes
            flushReplies(context: context)
            paused = true
            if !context.channel.isWritable { return false }
            if written >= Self.metadumpTurn {
                // A task run at once would run before the loop polls its sockets again (NIO runs
                // every task queued meanwhile first): one due a moment later lets it poll them.
                context.eventLoop.assumeIsolated().scheduleTask(in: Self.metadumpPause) { [self] in
                    resume(context: context)
                }
                return false
            }
            paused = false
        }
        metadump = nil
        return true
    }

    /// Bytes of metadump written in one event-loop turn.
    static let metadumpTurn = 64 * 1024
    /// The pause between two turns of a metadump, in which the loop serves other connections.
    static let metadumpPause: TimeAmount = .microseconds(50)

    /// Charges what the read buffer holds (requests not fully received, or held while paused).
    private func chargeRequestMemory(context: ChannelHandlerContext) {
        guard !closing, !requestMemory.charge(inbound?.readableBytes ?? 0) else { return }
        refuse(context: context)
    }

    /// Past `--request-memory`: the client is told, as memcached words an allocation failure,
    /// and its connection closed; what it sent is dropped.
    private func refuse(context: ChannelHandlerContext) {
        closing = true
        inbound = nil
        outbound.writeStaticString(RequestMemory.refusal)
        flushReplies(context: context)
        context.close(promise: nil)
    }

    private func flushReplies(context: ChannelHandlerContext) {
        guard outbound.readableBytes > 0 else { return }
        engine.counters.add(.bytesWritten, UInt64(outbound.readableBytes))
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        if outbound.capacity > Self.flushThreshold {
            // Do not keep a large reply's buffer for the connection's lifetime.
            outbound = context.channel.allocator.buffer(capacity: 4096)
        } else {
            // Usually written at once: the storage is ours again and is reused without copying.
            outbound.clear()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            resume(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Goes on with the requests held while paused, and reads again once none is held.
    private func resume(context: ChannelHandlerContext) {
        guard paused, !closing, context.channel.isActive, context.channel.isWritable else { return }
        paused = false
        process(context: context)
        flushReplies(context: context)
        if pendingRead, !paused {
            pendingRead = false
            context.read()
        }
        closeIfDrained(context: context)
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            draining = true
            closeIfDrained(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// During a drain, close once no request is half received and every reply is written.
    private func closeIfDrained(context: ChannelHandlerContext) {
        guard draining, !closing, decoder.isIdle, inbound == nil, !paused else { return }
        closing = true
        flushReplies(context: context)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection = engine.connection { engine.context.registry.remove(connection) }
        requestMemory.release()
        engine.context.totals.commit(&engine.counters)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a broken pipe from one client ends that connection only.
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension MemcacheConnectionHandler: Sendable {}
