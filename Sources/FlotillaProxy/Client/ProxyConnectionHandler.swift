import DequeModule
import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOExtras

/// One client connection of the proxy: decodes pipelined requests, hands each to its
/// `ProxyEngine` and carries out what the engine asks (shard requests, replies), and writes the
/// replies in order as they complete, as its `ClientPipeline` decides.
///
/// Bounded: at most `maxPendingRequests` requests of a client are in progress, and about
/// `ClientPipeline.replyBudget` bytes of its replies; past either, or while the client does not
/// read its replies, the handler starts none of its requests and stops reading from it until
/// replies have gone out.
final class ProxyConnectionHandler: ChannelDuplexHandler, ShardAnswerReceiver, HeldRepliesFlushing {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxPendingRequests = 1024

    private var decoder: MemcacheRequestDecoder
    /// What to do with each request and each shard's answer: the routing, without I/O.
    private var engine: ProxyEngine
    let shards: LoopShards
    private let recorder: OperationRecorder.Shard
    private var channelContext: ChannelHandlerContext?
    private var inbound: ByteBuffer?
    /// Reply order, bounds, hold and close: the decisions, without I/O.
    private var pipeline = ClientPipeline(maxPending: ProxyConnectionHandler.maxPendingRequests)
    /// What the engine asked for and is not done yet, interpreted in order (`interpret`).
    private var actions = ProxyActions()
    private var interpreting = false
    private var outbound = ByteBuffer()
    /// Replies wait in `outbound` for the end of a shard read (`LoopWrites`).
    private var repliesHeld = false
    /// Requests may start again once the held replies are written: whether the client reads
    /// them (the channel stays writable) is known only then.
    private var resumeAfterFlush = false
    /// `process` runs again on the next turn of the event loop (a large get's next slice, or
    /// the client read what it was sent).
    private var processScheduled = false

    /// This connection's share of what the proxy holds for requests not yet fully received.
    private var requestMemory: RequestMemory.Share

    init(
        decoder: MemcacheRequestDecoder,
        proxy: ProxyContext,
        shards: LoopShards,
        recorder: OperationRecorder.Shard,
        requestMemory: RequestMemory
    ) {
        self.decoder = decoder
        self.requestMemory = RequestMemory.Share(of: requestMemory)
        self.shards = shards
        self.recorder = recorder
        self.engine = ProxyEngine(
            proxy: proxy,
            seed: shards.nextSeed(),
            outstanding: { [links = shards.links] shard in links[shard].outstanding }
        )
        actions.reserveCapacity(16)
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
        chargeRequestMemory(context)
    }

    /// Charges what the read buffer holds (requests not fully received, or waiting while the
    /// client is paused). Past `--request-memory` the client is told, as memcached words an
    /// allocation failure, after the replies before, and its connection closed.
    private func chargeRequestMemory(_ context: ChannelHandlerContext) {
        guard !pipeline.closing, !requestMemory.charge(inbound?.readableBytes ?? 0) else { return }
        inbound = nil
        pipeline.closeWhenReplied()
        let slot = pipeline.open(.unknown, now: NIODeadline.now().uptimeNanoseconds)
        finish(slot, ByteBuffer(staticString: RequestMemory.refusal), endsRetrieval: false, failed: true)
        writeReady()
    }

    /// Decodes and starts requests while the client has room. A large get is started a slice
    /// per turn of the event loop, a few slices in flight at a time (`ProxyEngine.sliceKeys`):
    /// the other connections on the loop are served between its slices, and this client's later
    /// requests wait for its last.
    private func process() {
        guard inbound != nil || engine.isSlicing, pipeline.beginProcessing() else { return }
        while pipeline.canStartRequest {
            if engine.isSlicing {
                // The next slice starts when one in flight is answered (`shardAnswered`).
                guard engine.canContinueSlicing else { break }
                engine.continueSlicing(client: &pipeline, into: &actions)
            } else if inbound != nil, let request = decoder.decode(buffer: &inbound!) {
                engine.start(request, client: &pipeline, now: NIODeadline.now().uptimeNanoseconds, into: &actions)
            } else {
                break
            }
            interpret()
            if engine.isSlicing {
                if engine.canContinueSlicing { processLater() }
                break
            }
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

    /// Starts requests again on the next turn of the event loop, after the I/O that is ready
    /// (and does the read held back, if one was).
    private func processLater() {
        guard !processScheduled, let context = channelContext else { return }
        processScheduled = true
        context.eventLoop.assumeIsolated().execute { [self] in
            processScheduled = false
            guard let context = channelContext else { return }
            resume(context)
        }
    }

    /// A shard's answer to a request of this client.
    func shardAnswered(_ continuation: ProxyContinuation, _ result: Result<ShardReply, ShardFailure>) {
        engine.answered(continuation, result, client: &pipeline, into: &actions)
        interpret()
        if engine.isSlicing, engine.canContinueSlicing { processLater() }
    }

    /// Carries out what the engine asked for, in order. A shard that fails a request at once
    /// answers while its send is carried out: the engine's next actions join the end of the list.
    private func interpret() {
        guard !interpreting else { return }
        interpreting = true
        while let action = actions.popFirst() {
            switch consume action {
            case .send(let send):
                let callback = ShardCallback(receiver: self, send: send)
                shards.links[send.shard].call(expecting: send.expected, callback: callback) {
                    send.request.write(into: &$0)
                }
            case .reply(let slot, let bytes, let failed):
                finish(slot, bytes, endsRetrieval: false, failed: failed)
            case .replyHits(let slot, let hits):
                finish(slot, hits, endsRetrieval: true, failed: false)
            case .release:
                releasePipeline()
            }
        }
        interpreting = false
    }

    private func finish(_ slot: ReplySlot, _ bytes: ByteBuffer?, endsRetrieval: Bool, failed: Bool) {
        guard let finished = pipeline.finish(slot, bytes, endsRetrieval: endsRetrieval) else { return }
        if finished.records {
            recorder.record(
                finished.operation.rawValue,
                nanoseconds: NIODeadline.now().uptimeNanoseconds &- finished.start,
                failed: failed
            )
        }
        if finished.atHead { writeReady() }
    }

    /// Writes every completed reply at the head of the queue, in order. Replies completed while
    /// this client's requests are being started, or while a shard read is delivering replies,
    /// gather in `outbound` and leave in one write when that is over. This is the one place a
    /// reply leaves from (`flushReplies` sends what it gathered).
    private func writeReady() {
        guard let context = channelContext else { return }
        let actions = pipeline.takeReady(
            into: &outbound,
            decoderIdle: decoder.isIdle && inbound == nil && !engine.isSlicing
        )
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
            if repliesHeld {
                resumeAfterFlush = true
            } else {
                resume(context)
            }
        }
    }

    private func resume(_ context: ChannelHandlerContext) {
        process()
        if pipeline.takePendingRead() { context.read() }
    }

    /// Writes the replies held during a shard read (`LoopWrites` calls it when the read is over).
    func flushReplies() {
        repliesHeld = false
        guard let context = channelContext, !pipeline.closing else { return }
        sendReplies(context)
        if resumeAfterFlush {
            resumeAfterFlush = false
            resume(context)
        }
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

    /// Resumes the requests held back by a compare-and-swap.
    private func releasePipeline() {
        guard pipeline.release(), let context = channelContext else { return }
        resume(context)
    }

    func read(context: ChannelHandlerContext) {
        if pipeline.readRequested() { context.read() }
    }

    /// A client that stops reading what it is sent is sent nothing more to do: no request of its
    /// is started (nor read) until the channel's buffered replies drain below its low mark.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Later, not now: NIO reports writability from inside a write of ours (`sendReplies`),
        // where starting requests would add replies to the buffer being written.
        if pipeline.writabilityChanged(context.channel.isWritable) { processLater() }
        context.fireChannelWritabilityChanged()
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
        requestMemory.release()
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
