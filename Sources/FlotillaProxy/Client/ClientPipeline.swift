import DequeModule
import FlotillaMemcache
import NIOCore

/// A client request's place in its connection's reply order: a handle on its reply, which lives
/// inline in the connection's queue (no allocation per request).
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
    /// Retrieval keys the reply may hold values of (0 for other requests).
    let keys: Int32
    /// The request's latency is recorded when this reply is done (not for a slice of a get).
    let records: Bool
    /// The reply's bytes as counted against the client's budget: the estimate while in
    /// progress, the reply's own size once done.
    var counted: Int

    init(operation: MemcacheOperation, start: UInt64, keys: Int32, records: Bool, counted: Int) {
        self.operation = operation
        self.start = start
        self.keys = keys
        self.records = records
        self.counted = counted
    }
}

/// The state of one client connection of the proxy, without I/O: the replies in request order
/// whatever order the shards answer in, the bound on requests in progress, the pipeline hold of
/// a compare-and-swap, and when to read, resume and close (STYLE.md rule 2: the channel handler
/// only interprets what this returns).
///
/// Bounded: at most `maxPending` requests are in progress, and the replies in progress or waiting
/// to be written are held to `replyBudget` bytes; past either no request is started and no read
/// is asked for until the replies have gone out below half of it. While the client does not read
/// what was written to it (the channel is not writable), nothing is started either: a client that
/// stops reading stops costing the shards and the proxy's memory (issue 13). A reply's size is
/// known only when it arrives, so a retrieval counts each of its keys at `bytesPerKey`, learned
/// from this client's replies: it starts at `initialBytesPerKey` (memcached's largest item) and
/// follows the largest recent value, halving at most per reply. A first request is always
/// started, whatever its estimate.
///
/// On every request's path: the per-request methods are inlined into the handler, as the code was
/// when it lived there (callgrind counted about 100 instructions per request otherwise).
struct ClientPipeline {
    /// What the handler must do once replies were taken, in this order. A set of flags rather
    /// than a list, so that the reply path allocates nothing.
    struct Actions: OptionSet {
        let rawValue: UInt8

        /// Write the replies gathered in the outbound buffer (now, or at the end of the shard read).
        static let sendReplies = Actions(rawValue: 1)
        /// Write what is gathered, then close the connection: every earlier reply is out.
        static let close = Actions(rawValue: 2)
        /// Start the requests already received (room was made, or the pipeline was released).
        static let resume = Actions(rawValue: 4)
    }

    let maxPending: Int
    /// Bytes of replies in progress (estimated) and waiting to be written, past which no
    /// request is started.
    let replyBudget: Int
    /// The estimated size of one retrieval key's share of a reply.
    private(set) var bytesPerKey: Int
    /// The sum of the slots' `counted` bytes.
    private(set) var countedBytes = 0
    /// The client reads what it is sent (the channel is writable).
    private(set) var writable = true
    /// The replies of requests `sequence - slots.count + 1 ... sequence`, oldest first.
    /// A `Deque`: it holds its elements as they are, where `CircularBuffer` holds optionals that
    /// Swift copies and destroys through generic value witnesses on every request.
    private var slots = Deque<PendingReply>()
    /// Requests started on this connection, in order.
    private(set) var sequence: UInt64 = 0
    /// Keys this client wrote while replies were outstanding, with the sequence of the last write:
    /// a later read of such a key goes to the primary, where the write arrived first, and a read
    /// issued before the write never falls back to a replica after it. Cleared when no request is
    /// in progress, so it stays as small as the client's pipeline.
    private var recentWrites: [ByteBuffer: UInt64] = [:]

    /// No request is started (too many in progress) until replies have gone out.
    private(set) var paused = false
    /// A compare-and-swap waits for the primary's answer before its copies go to the other
    /// replicas: later requests of this client wait with it, so that none overtakes a copy.
    private(set) var held = false
    /// Requests are being started: replies gather until that is over.
    private(set) var processing = false
    /// A read was asked for while paused or held: it is done on resuming.
    private var pendingRead = false
    /// The server drains: close once idle.
    private var draining = false
    /// The connection is closing or closed: nothing more is started or written.
    private(set) var closing = false
    /// A `quit` or a protocol error: close once the replies before it are out.
    private(set) var closeAfterReplies = false

    /// memcached's default largest item: what a key's value may be before its reply shows.
    static let initialBytesPerKey = 1024 * 1024
    /// A retrieval key's share never counts for less (the VALUE line alone is about this).
    static let minimumBytesPerKey = 64

    init(maxPending: Int, replyBudget: Int = 8 * 1024 * 1024) {
        self.maxPending = maxPending
        self.replyBudget = replyBudget
        self.bytesPerKey = Self.initialBytesPerKey
    }

    // MARK: Starting requests

    /// Whether requests may be started now; if so, they are being started until `endProcessing`.
    @inline(__always)
    mutating func beginProcessing() -> Bool {
        guard !closing, !closeAfterReplies, !processing else { return false }
        processing = true
        return true
    }

    /// Whether one more request may start in this round of processing.
    @inline(__always)
    var canStartRequest: Bool {
        !held && !closeAfterReplies && !closing && !overLimits
    }

    /// Too many requests or reply bytes, or a client that does not read: start nothing more.
    @inline(__always)
    private var overLimits: Bool {
        if slots.isEmpty { return !writable }
        return slots.count >= maxPending || countedBytes >= replyBudget || !writable
    }

    /// Back under half the limits, and the client reads: requests may start again.
    @inline(__always)
    private var underResumeMarks: Bool {
        writable && slots.count < maxPending / 2 && countedBytes < replyBudget / 2
    }

    @inline(__always)
    mutating func endProcessing() {
        processing = false
        paused = overLimits
    }

    /// A new reply slot at the end of the queue, for a request started at `now` (nanoseconds)
    /// whose reply may hold the values of `keys` retrieval keys.
    @inline(__always)
    mutating func open(
        _ operation: MemcacheOperation,
        keys: Int = 0,
        now: UInt64,
        records: Bool = true
    ) -> ReplySlot {
        sequence &+= 1
        let counted = keys &* bytesPerKey
        countedBytes &+= counted
        slots.append(
            PendingReply(
                operation: operation,
                start: now,
                keys: Int32(truncatingIfNeeded: keys),
                records: records,
                counted: counted
            )
        )
        return ReplySlot(sequence: sequence)
    }

    /// The queue position of `slot`, nil once its reply has left (it was done then).
    @inline(__always)
    private func position(of slot: ReplySlot) -> Int? {
        let fromEnd = sequence &- slot.sequence
        guard fromEnd < UInt64(slots.count) else { return nil }
        return slots.count - 1 - Int(fromEnd)
    }

    /// Whether `slot` has its reply.
    @inline(__always)
    func isDone(_ slot: ReplySlot) -> Bool {
        guard let position = position(of: slot) else { return true }
        return slots[position].done
    }

    /// Notes a write of `key` by the request being started.
    mutating func noteWrite(_ key: ByteBuffer) {
        recentWrites[key] = sequence
    }

    /// The sequence of this client's last write of `key` still in the window, if any.
    func lastWrite(_ key: ByteBuffer) -> UInt64? {
        recentWrites.isEmpty ? nil : recentWrites[key]
    }

    // MARK: Replies

    /// What finishing a slot gives the handler to record, and whether replies can leave now.
    struct Finished {
        var operation: MemcacheOperation
        var start: UInt64
        /// The request's latency is to be recorded (false for a slice of a get).
        var records: Bool
        /// The slot was at the head of the queue: replies are ready to go out.
        var atHead: Bool
    }

    /// Fills `slot` (nil bytes: nothing to send, as for noreply); nil when it was already done.
    @inline(__always)
    mutating func finish(_ slot: ReplySlot, _ bytes: ByteBuffer?, endsRetrieval: Bool) -> Finished? {
        guard let position = position(of: slot) else { return nil }
        // One in-place access to the slot: each read of `slots[position].field` copied the
        // whole reply out of the Deque (about 450 instructions per request, callgrind).
        return Self.fill(
            &slots[position],
            bytes,
            endsRetrieval: endsRetrieval,
            atHead: position == slots.startIndex,
            countedBytes: &countedBytes,
            bytesPerKey: &bytesPerKey
        )
    }

    @inline(__always)
    private static func fill(
        _ reply: inout PendingReply,
        _ bytes: ByteBuffer?,
        endsRetrieval: Bool,
        atHead: Bool,
        countedBytes: inout Int,
        bytesPerKey: inout Int
    ) -> Finished? {
        guard !reply.done else { return nil }
        let size = bytes?.readableBytes ?? 0
        countedBytes &+= size &- reply.counted
        reply.counted = size
        if reply.keys > 0 {
            // Up at once to a large value; down by half at most per reply.
            bytesPerKey = max(size / Int(reply.keys), bytesPerKey / 2, Self.minimumBytesPerKey)
        }
        reply.bytes = bytes
        reply.endsRetrieval = endsRetrieval
        reply.done = true
        return Finished(operation: reply.operation, start: reply.start, records: reply.records, atHead: atHead)
    }

    /// Moves every completed reply at the head of the queue into `outbound`, in order, and says
    /// what to do next.
    @inline(__always)
    mutating func takeReady(
        into outbound: inout ByteBuffer,
        decoderIdle: @autoclosure () -> Bool
    ) -> Actions {
        while !slots.isEmpty, slots[0].done {
            let reply = slots.removeFirst()
            countedBytes &-= reply.counted
            if let bytes = reply.bytes {
                if reply.endsRetrieval {
                    outbound.writeRetrievalReply(hits: bytes)
                } else {
                    outbound.writeImmutableBuffer(bytes)
                }
            }
        }
        if slots.isEmpty, !recentWrites.isEmpty { recentWrites.removeAll(keepingCapacity: true) }
        // Processing gathers the replies of the requests it starts, and ends with this call again.
        if processing { return [] }
        if slots.isEmpty, closeAfterReplies || (draining && decoderIdle()) {
            closing = true
            return .close
        }
        var actions: Actions = []
        if outbound.readableBytes > 0 { actions.insert(.sendReplies) }
        if paused, underResumeMarks {
            paused = false
            actions.insert(.resume)
        }
        return actions
    }

    /// The channel's writability changed (the client read, or stopped reading, what it was
    /// sent): true when requests held back can be started now.
    mutating func writabilityChanged(_ isWritable: Bool) -> Bool {
        writable = isWritable
        guard isWritable else {
            paused = true
            return false
        }
        guard paused, !processing, underResumeMarks else { return false }
        paused = false
        return true
    }

    // MARK: Reads, hold, close

    /// The channel asks to read: true to read now, false when it must wait for `resume`.
    mutating func readRequested() -> Bool {
        guard paused || held else { return true }
        pendingRead = true
        return false
    }

    /// After resuming: whether the read that was held back can be done now.
    mutating func takePendingRead() -> Bool {
        guard pendingRead, !paused, !held else { return false }
        pendingRead = false
        return true
    }

    /// Starts no further request until `release()`.
    mutating func hold() {
        held = true
    }

    /// Resumes the requests held back by `hold()`: true when they can be started now.
    mutating func release() -> Bool {
        guard held else { return false }
        held = false
        return !processing
    }

    /// Close once every earlier reply is written.
    mutating func closeWhenReplied() {
        closeAfterReplies = true
    }

    /// The server drains: close once the replies are out and no request is half received.
    mutating func quiesce() {
        draining = true
    }

    /// The connection closed.
    mutating func closed() {
        closing = true
    }
}
