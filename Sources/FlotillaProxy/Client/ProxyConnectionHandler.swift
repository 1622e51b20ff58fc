import DequeModule
import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOExtras

/// A client request's place in its connection's reply order: a handle on its reply, which lives
/// inline in the connection's queue (no allocation per request). Replies leave in request order,
/// whatever order the shards answer in.
struct ReplySlot {
    /// The request's place in its connection's order.
    let sequence: UInt64
}

/// The reply to one client request, filled in when the shards have answered.
struct PendingReply {
    var bytes: ByteBuffer?
    /// `END\r\n` follows `bytes`: a get's hit is forwarded as the shard's slice, without a copy.
    var endsRetrieval = false
    var done = false
    let operation: MemcacheOperation
    let start: UInt64

    init(operation: MemcacheOperation, start: UInt64) {
        self.operation = operation
        self.start = start
    }
}

/// One client connection of the proxy: decodes pipelined requests, hands each to the engine,
/// and writes the replies in order as they complete.
///
/// Bounded: at most `maxPendingRequests` requests of a client are in progress; past that the
/// handler stops reading from it until replies have gone out.
final class ProxyConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxPendingRequests = 1024

    private var decoder: MemcacheRequestDecoder
    let context: ProxyContext
    let shards: LoopShards
    private let recorder: OperationRecorder.Shard
    private var channelContext: ChannelHandlerContext?
    private var inbound: ByteBuffer?
    /// The replies of requests `sequence - slots.count + 1 ... sequence`, oldest first.
    /// A `Deque`: it holds its elements as they are, where `CircularBuffer` holds optionals that
    /// Swift copies and destroys through generic value witnesses on every request.
    private var slots = Deque<PendingReply>()
    private var outbound = ByteBuffer()
    private var paused = false
    /// A compare-and-swap waits for the primary's answer before its copies go to the other
    /// replicas: later requests of this client wait with it, so that none overtakes a copy.
    private var held = false
    private var processing = false
    /// Replies wait in `outbound` for the end of a shard read (`LoopWrites`).
    private var repliesHeld = false
    private var pendingRead = false
    private var draining = false
    private(set) var closing = false
    /// A `quit` or a protocol error: close once the replies before it are out.
    private var closeAfterReplies = false
    /// Requests started on this connection, in order.
    private(set) var sequence: UInt64 = 0
    /// Keys this client wrote while replies were outstanding, with the sequence of the last write:
    /// a later read of such a key goes to the primary, where the write arrived first, and a read
    /// issued before the write never falls back to a replica after it. Cleared when no request is
    /// in progress, so it stays as small as the client's pipeline.
    private var recentWrites: [ByteBuffer: UInt64] = [:]

    init(decoder: MemcacheRequestDecoder, context: ProxyContext, shards: LoopShards, recorder: OperationRecorder.Shard)
    {
        self.decoder = decoder
        self.context = context
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
        guard !closing, !closeAfterReplies, !processing, inbound != nil else { return }
        processing = true
        while !held, slots.count < Self.maxPendingRequests, let request = decoder.decode(buffer: &inbound!) {
            execute(request)
            if closeAfterReplies || closing { break }
        }
        processing = false
        paused = slots.count >= Self.maxPendingRequests
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
        sequence &+= 1
        slots.append(PendingReply(operation: operation, start: NIODeadline.now().uptimeNanoseconds))
        return ReplySlot(sequence: sequence)
    }

    /// The queue position of `slot`, nil once its reply has left (it was done then).
    private func position(of slot: ReplySlot) -> Int? {
        let fromEnd = sequence &- slot.sequence
        guard fromEnd < UInt64(slots.count) else { return nil }
        return slots.count - 1 - Int(fromEnd)
    }

    /// Whether `slot` has its reply.
    func isDone(_ slot: ReplySlot) -> Bool {
        guard let position = position(of: slot) else { return true }
        return slots[position].done
    }

    /// Notes a write of `key` by the request being started.
    func noteWrite(_ key: ByteBuffer) {
        recentWrites[key] = sequence
    }

    /// The sequence of this client's last write of `key` still in the window, if any.
    func lastWrite(_ key: ByteBuffer) -> UInt64? {
        recentWrites.isEmpty ? nil : recentWrites[key]
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
        guard let position = position(of: slot), !slots[position].done else { return }
        slots[position].bytes = bytes
        slots[position].endsRetrieval = endsRetrieval
        slots[position].done = true
        recorder.record(
            slots[position].operation.rawValue,
            nanoseconds: NIODeadline.now().uptimeNanoseconds &- slots[position].start,
            failed: failed
        )
        if position == slots.startIndex { writeReady() }
    }

    func finish(_ slot: ReplySlot, line: String, failed: Bool = true) {
        var buffer = ByteBuffer()
        buffer.writeString(line)
        buffer.writeStaticString("\r\n")
        finish(slot, buffer, failed: failed)
    }

    /// Writes every completed reply at the head of the queue, in order. Replies completed while
    /// this client's requests are being started, or while a shard read is delivering replies,
    /// gather in `outbound` and leave in one write when that is over.
    private func writeReady() {
        guard let context = channelContext else { return }
        while !slots.isEmpty, slots[0].done {
            let reply = slots.removeFirst()
            if let bytes = reply.bytes {
                if reply.endsRetrieval {
                    outbound.writeRetrievalReply(hits: bytes)
                } else {
                    outbound.writeImmutableBuffer(bytes)
                }
            }
        }
        if slots.isEmpty, !recentWrites.isEmpty { recentWrites.removeAll(keepingCapacity: true) }
        // `process()` calls this again when it is done.
        if processing { return }
        if outbound.readableBytes > 0 {
            if shards.writes.holdingReplies {
                if !repliesHeld {
                    repliesHeld = true
                    shards.writes.repliesHeld(self)
                }
            } else {
                sendReplies(context)
            }
        }
        if slots.isEmpty, closeAfterReplies || (draining && decoder.isIdle && inbound == nil) {
            sendReplies(context)
            closing = true
            context.close(promise: nil)
            return
        }
        if paused, slots.count < Self.maxPendingRequests / 2 {
            paused = false
            process()
            if pendingRead, !paused {
                pendingRead = false
                context.read()
            }
        }
    }

    /// Writes the replies held during a shard read (`LoopWrites` calls it when the read is over).
    func flushReplies() {
        repliesHeld = false
        guard let context = channelContext, !closing else { return }
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
        held = true
    }

    /// Resumes the requests held back by `holdPipeline()`.
    func releasePipeline() {
        guard held else { return }
        held = false
        guard !processing else { return }
        process()
        if pendingRead, !paused, !held {
            pendingRead = false
            channelContext?.read()
        }
    }

    /// Close the connection once every earlier reply is written.
    func closeWhenReplied() {
        closeAfterReplies = true
    }

    func read(context: ChannelHandlerContext) {
        if paused || held {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            draining = true
            writeReady()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        channelContext = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ProxyConnectionHandler: Sendable {}
