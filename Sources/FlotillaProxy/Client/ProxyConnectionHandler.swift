import DequeModule
import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOExtras

/// One client connection of the proxy: decodes pipelined requests, hands each to the engine,
/// and writes the replies in order as they complete, as its `ClientPipeline` decides.
///
/// Bounded: at most `maxPendingRequests` requests of a client are in progress; past that the
/// handler stops reading from it until replies have gone out.
final class ProxyConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxPendingRequests = 1024

    private var decoder: MemcacheRequestDecoder
    /// What every connection shares: settings, placement, shard health, counters.
    let proxy: ProxyContext
    let shards: LoopShards
    private let recorder: OperationRecorder.Shard
    private var channelContext: ChannelHandlerContext?
    private var inbound: ByteBuffer?
    /// Reply order, bounds, hold and close: the decisions, without I/O.
    private var pipeline = ClientPipeline(maxPending: ProxyConnectionHandler.maxPendingRequests)
    private var outbound = ByteBuffer()
    /// Replies wait in `outbound` for the end of a shard read (`LoopWrites`).
    private var repliesHeld = false

    /// The connection is closing or closed: nothing more is started or written.
    var closing: Bool { pipeline.closing }
    /// Requests started on this connection, in order.
    var sequence: UInt64 { pipeline.sequence }

    init(decoder: MemcacheRequestDecoder, proxy: ProxyContext, shards: LoopShards, recorder: OperationRecorder.Shard) {
        self.decoder = decoder
        self.proxy = proxy
        self.shards = shards
        self.recorder = recorder
    }

    func handlerAdded(context: ChannelHandlerContext) {
        channelContext = context
        outbound = context.channel.allocator.buffer(capacity: 4096)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        process()
    }

    /// Decodes and starts requests while the client has room.
    private func process() {
        guard inbound != nil, pipeline.beginProcessing() else { return }
        while pipeline.canStartRequest, let request = decoder.decode(buffer: &inbound!) {
            execute(request)
        }
        pipeline.endProcessing()
        if let buffer = inbound {
            if buffer.readableBytes == 0 {
                inbound = nil
            } else if buffer.readerIndex > 64 * 1024 {
                inbound!.discardReadBytes()
            }
        }
        writeReady()
    }

    /// A new reply slot at the end of the queue.
    func openSlot(_ operation: MemcacheOperation) -> ReplySlot {
        pipeline.open(operation, now: NIODeadline.now().uptimeNanoseconds)
    }

    /// Whether `slot` has its reply.
    func isDone(_ slot: ReplySlot) -> Bool {
        pipeline.isDone(slot)
    }

    /// Notes a write of `key` by the request being started.
    func noteWrite(_ key: ByteBuffer) {
        pipeline.noteWrite(key)
    }

    /// The sequence of this client's last write of `key` still in the window, if any.
    func lastWrite(_ key: ByteBuffer) -> UInt64? {
        pipeline.lastWrite(key)
    }

    /// Fills `slot` (nil bytes: nothing to send, as for noreply) and writes what is ready.
    func finish(_ slot: ReplySlot, _ bytes: ByteBuffer?, failed: Bool = false) {
        finish(slot, bytes, endsRetrieval: false, failed: failed)
    }

    /// Fills `slot` with a retrieval's hits (`VALUE` blocks), to which the reply's `END` is added.
    func finish(_ slot: ReplySlot, hits: ByteBuffer) {
        finish(slot, hits, endsRetrieval: true, failed: false)
    }

    private func finish(_ slot: ReplySlot, _ bytes: ByteBuffer?, endsRetrieval: Bool, failed: Bool) {
        guard let finished = pipeline.finish(slot, bytes, endsRetrieval: endsRetrieval) else { return }
        recorder.record(
            finished.operation.rawValue,
            nanoseconds: NIODeadline.now().uptimeNanoseconds &- finished.start,
            failed: failed
        )
        if finished.atHead { writeReady() }
    }

    func finish(_ slot: ReplySlot, line: String, failed: Bool = true) {
        var buffer = ByteBuffer()
        buffer.writeString(line)
        buffer.writeStaticString("\r\n")
        finish(slot, buffer, failed: failed)
    }

    /// Writes every completed reply at the head of the queue, in order. Replies completed while
    /// this client's requests are being started, or while a shard read is delivering replies,
    /// gather in `outbound` and leave in one write when that is over. This is the one place a
    /// reply leaves from (`flushReplies` sends what it gathered).
    private func writeReady() {
        guard let context = channelContext else { return }
        let actions = pipeline.takeReady(into: &outbound, decoderIdle: decoder.isIdle && inbound == nil)
        if actions.contains(.close) {
            sendReplies(context)
            context.close(promise: nil)
            return
        }
        if actions.contains(.sendReplies) {
            if shards.writes.holdingReplies {
                if !repliesHeld {
                    repliesHeld = true
                    shards.writes.repliesHeld(self)
                }
            } else {
                sendReplies(context)
            }
        }
        if actions.contains(.resume) {
            process()
            if pipeline.takePendingRead() { context.read() }
        }
    }

    /// Writes the replies held during a shard read (`LoopWrites` calls it when the read is over).
    func flushReplies() {
        repliesHeld = false
        guard let context = channelContext, !pipeline.closing else { return }
        sendReplies(context)
    }

    private func sendReplies(_ context: ChannelHandlerContext) {
        guard outbound.readableBytes > 0 else { return }
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        if outbound.capacity > 256 * 1024 {
            // Do not keep a large reply's buffer for the connection's lifetime.
            outbound = context.channel.allocator.buffer(capacity: 4096)
        } else {
            // Usually written at once: the storage is ours again and is reused without copying.
            outbound.clear()
        }
    }

    /// Starts no further request of this client until `releasePipeline()`.
    func holdPipeline() {
        pipeline.hold()
    }

    /// Resumes the requests held back by `holdPipeline()`.
    func releasePipeline() {
        guard pipeline.release() else { return }
        process()
        if pipeline.takePendingRead() { channelContext?.read() }
    }

    /// Close the connection once every earlier reply is written.
    func closeWhenReplied() {
        pipeline.closeWhenReplied()
    }

    func read(context: ChannelHandlerContext) {
        if pipeline.readRequested() { context.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            pipeline.quiesce()
            writeReady()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        pipeline.closed()
        channelContext = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ProxyConnectionHandler: Sendable {}
