import DequeModule
import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Foundation
import NIOCore

/// What the proxy does with each command, without I/O: reads go to one replica with fallback,
/// writes to every replica with the configured consistency, and the rest is answered by the
/// proxy itself. One route per file, after mcrouter: `ReadRoute` (fallback, read repair),
/// `ReplicatedWriteRoute` (all, quorum, one), `CompareAndSwapRoute` (primary, then copies),
/// `MetaRoutes` (mg, md), `BroadcastRoute` (flush_all).
///
/// The engine is given a request or a shard's answer and the client's `ClientPipeline`, and
/// appends what must happen to `actions`: requests to send to shards, with what to do with their
/// answers (`ProxyContinuation`), and replies to fill. The connection handler interprets them
/// (STYLE.md rule 2); the tests give answers by hand, without a socket.
///
/// Shared state it changes directly: shard hints and proxy counters in `ProxyContext`, and the
/// client pipeline's order, hold and close.
struct ProxyEngine {
    /// What every connection shares: settings, placement, shard health, counters.
    let proxy: ProxyContext
    /// Requests queued or in flight from this event loop to a shard: the load of two choices.
    private let outstanding: (Int) -> Int
    private let picker: PowerOfTwoChoicesPicker
    private var random: SplitMix64
    /// When the request being started was received (nanoseconds), for its reply slot.
    private(set) var now: UInt64 = 0
    /// A large get whose slices are still to start: the handler calls `continueSlicing` on the
    /// next turn of the event loop, before any later request of the client.
    var slicing: SlicedRetrieval?
    /// Whether a large get still has slices to start.
    var isSlicing: Bool { slicing != nil }
    /// Whether its next slice may start now: few enough of its slices are in flight.
    var canContinueSlicing: Bool {
        guard let slicing else { return false }
        return slicing.unfinished < Self.slicesInFlight
    }

    init(proxy: ProxyContext, seed: UInt64, outstanding: @escaping (Int) -> Int) {
        self.proxy = proxy
        self.outstanding = outstanding
        self.picker = PowerOfTwoChoicesPicker(count: proxy.configuration.shards.count)
        self.random = SplitMix64(seed: seed)
    }

    /// Transport failures (not replies) of a write are retried this many times.
    static let writeRetries = 2

    // MARK: Requests

    /// Starts `request`: opens its reply slot in `client` and says what to send or reply.
    mutating func start(
        _ request: MemcacheRequest,
        client: inout ClientPipeline,
        now: UInt64,
        into actions: inout ProxyActions
    ) {
        self.now = now
        switch request {
        case .retrieval(let retrieval):
            retrieve(retrieval, &client, &actions)
        case .storage(let storage):
            store(storage, &client, &actions)
        case .delete(let key, let noreply):
            var bytes = ByteBuffer()
            MemcacheForwarding.writeDelete(key: key, into: &bytes)
            replicate(key: key, request: bytes, operation: .delete, noreply: noreply, &client, &actions)
        case .arithmetic(let arithmetic):
            var bytes = ByteBuffer()
            MemcacheForwarding.writeArithmetic(arithmetic, into: &bytes)
            let operation: MemcacheOperation = arithmetic.increment ? .incr : .decr
            replicate(
                key: arithmetic.key,
                request: bytes,
                operation: operation,
                noreply: arithmetic.noreply,
                &client,
                &actions
            )
        case .touch(let key, let exptime, let noreply):
            var bytes = ByteBuffer()
            MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &bytes)
            replicate(key: key, request: bytes, operation: .touch, noreply: noreply, &client, &actions)
        case .flushAll(let delay, let noreply):
            flushAll(delay: delay, noreply: noreply, &client, &actions)
        case .version:
            let slot = open(.version, &client)
            actions.append(.reply(slot, Self.line("VERSION \(proxy.version)"), failed: false))
        case .verbosity(let noreply):
            let slot = open(.verbosity, &client)
            actions.append(.reply(slot, noreply ? nil : Self.line("OK"), failed: false))
        case .stats(let arguments) where arguments.first == "cachedump":
            cachedump(arguments, &client, &actions)
        case .stats(let arguments) where !arguments.isEmpty:
            statsGroup(arguments, &client, &actions)
        case .stats:
            let slot = open(.stats, &client)
            actions.append(.reply(slot, statsReply(), failed: false))
        case .metadump, .crawl:
            // Each shard crawls its own items: ask it directly. Answered as memcached answers a
            // command it does not know, as before the cache served these.
            let slot = open(.lruCrawler, &client)
            actions.append(.reply(slot, Self.line("ERROR"), failed: true))
        case .quit, .close:
            client.closeWhenReplied()
        case .binaryProtocol(let opcode, let opaque):
            let slot = open(.unknown, &client)
            var reply = ByteBuffer()
            reply.writeBinaryUnknownCommand(opcode: opcode, opaque: opaque)
            actions.append(.reply(slot, reply, failed: true))
            client.closeWhenReplied()
        case .meta(let meta):
            executeMeta(meta, &client, &actions)
        case .tooLarge(let operation, let key, let noreply, let dropsCurrentValue):
            let slot = open(operation, &client)
            if dropsCurrentValue {
                // As memcached: a failed plain set must not leave the old value behind.
                var bytes = ByteBuffer()
                MemcacheForwarding.writeDelete(key: key, into: &bytes)
                replicate(key: key, request: bytes, operation: .delete, noreply: true, &client, &actions)
            }
            let reply = noreply ? nil : Self.line("SERVER_ERROR object too large for cache")
            actions.append(.reply(slot, reply, failed: true))
        case .reply(let reply):
            let slot = open(reply.operation, &client)
            if reply.suppressed {
                actions.append(.reply(slot, nil, failed: reply.isError))
            } else {
                var bytes = ByteBuffer()
                bytes.writeMemcacheLine(reply.message)
                actions.append(.reply(slot, bytes, failed: reply.isError))
            }
        }
    }

    /// A shard's answer to a request the engine sent: what happens next.
    mutating func answered(
        _ continuation: ProxyContinuation,
        _ result: Result<ShardReply, ShardFailure>,
        client: inout ClientPipeline,
        into actions: inout ProxyActions
    ) {
        switch continuation {
        case .ignore:
            break
        case .readOne(let read):
            readOneAnswered(read, result, client, &actions)
        case .readRound(let state, let shard, let indices):
            readRoundAnswered(state, shard: shard, indices: indices, result, client, &actions)
        case .repairSource(let repair):
            repairSourceAnswered(repair, result, &actions)
        case .write(let gather, let replica, let retries):
            writeAnswered(gather, replica: replica, retries: retries, result, client, &actions)
        case .swap(let swap):
            swapAnswered(swap, result, &actions)
        case .swapCopy(let swap, let replica, let retries):
            swapCopyAnswered(swap, replica: replica, retries: retries, result, client, &actions)
        case .metaGet(let read, let target):
            metaGetAnswered(read, target: target, result, client, &actions)
        case .forward(let slot):
            actions.append(Self.forwarded(slot, result))
        case .broadcast(let broadcast):
            broadcastAnswered(broadcast, result, &actions)
        }
    }

    // MARK: Shared by the routes

    /// A new reply slot at the end of the client's queue, for the request being started.
    @inline(__always)
    /// Opens the reply slot of a request whose reply may hold the values of `keys` keys.
    func open(_ operation: MemcacheOperation, keys: Int = 0, _ client: inout ClientPipeline) -> ReplySlot {
        client.open(operation, keys: keys, now: now)
    }

    /// Whether a result is a transport failure worth sending the request again for.
    static func shouldRetry(_ result: Result<ShardReply, ShardFailure>, retries: Int) -> Bool {
        guard case .failure(let failure) = result, retries > 0 else { return false }
        return failure != .down && failure != .overloaded
    }

    /// The replica to read from: of two random replicas, the one with fewer requests outstanding
    /// from this loop ("the power of two choices").
    mutating func chooseReplica(_ replicas: ReplicaSet) -> Int {
        picker.pick(from: replicas, load: outstanding, using: &random) ?? 0
    }

    static func line(_ text: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    static func serverError(_ slot: ReplySlot, _ message: String, noreply: Bool = false) -> ProxyAction {
        .reply(slot, noreply ? nil : line("SERVER_ERROR \(message)"), failed: true)
    }

    /// A shard's reply passed on as it is; a failure as `SERVER_ERROR`.
    static func forwarded(_ slot: ReplySlot, _ result: Result<ShardReply, ShardFailure>) -> ProxyAction {
        switch result {
        case .success(let reply): .reply(slot, reply.raw, failed: reply.isFailure)
        case .failure(let failure): serverError(slot, failure.message)
        }
    }

    // MARK: Stats

    func statsReply() -> ByteBuffer {
        let health = proxy.health.snapshot()
        let rebuilds = proxy.rebuilds.snapshot()
        let uptime = ContinuousClock.now - proxy.startedAt
        var lines: [(String, String)] = [
            ("pid", "\(getpid())"),
            ("uptime", "\(uptime.components.seconds)"),
            ("version", proxy.version),
            ("shards", "\(health.count)"),
            ("shards_down", "\(health.filter(\.down).count)"),
            ("replicas", "\(proxy.configuration.replicas)"),
            ("consistency", proxy.configuration.consistency.rawValue),
            ("get_hits", "\(proxy.counters[.getHits])"),
            ("get_misses", "\(proxy.counters[.getMisses])"),
            ("fallback_reads", "\(proxy.counters[.fallbackReads])"),
            ("read_repairs", "\(proxy.counters[.readRepairs])"),
            ("replication_failures", "\(proxy.counters[.replicationFailures])"),
            ("hints_queued", "\(proxy.counters[.hintsQueued])"),
        ]
        for (index, shard) in health.enumerated() {
            let name = proxy.configuration.shards[index].address
            lines.append(("shard:\(name):state", shard.down ? "down" : shard.recovering ? "recovering" : "up"))
            lines.append(("shard:\(name):pending_hints", "\(shard.pendingHints)"))
            lines.append(("shard:\(name):hints_replayed", "\(shard.hintsReplayed)"))
            lines.append(("shard:\(name):restarts", "\(rebuilds[index].restarts)"))
            lines.append(
                (
                    "shard:\(name):rebuild",
                    rebuilds[index].running ? "running" : rebuilds[index].needed ? "needed" : "idle"
                )
            )
            lines.append(("shard:\(name):rebuild_keys_copied", "\(rebuilds[index].copied)"))
            lines.append(("shard:\(name):rebuilds", "\(rebuilds[index].completed)"))
            lines.append(("shard:\(name):outstanding", "\(outstanding(index))"))
        }
        return Self.statLines(lines)
    }
}

/// What the engine asked for and is not done yet, oldest first. A deque, so that the handler
/// takes each action out without copying it.
typealias ProxyActions = Deque<ProxyAction>

/// What the engine asks the connection to do, in order.
enum ProxyAction {
    /// Send a request to a shard; its answer goes back to the engine with its continuation.
    case send(ShardSend)
    /// Fill the reply of `slot` (nil: nothing to send, as for noreply).
    case reply(ReplySlot, ByteBuffer?, failed: Bool)
    /// Fill the reply of `slot` with a retrieval's hits (`VALUE` blocks); `END` is added.
    case replyHits(ReplySlot, ByteBuffer)
    /// A compare-and-swap's copies are sent: the client's held requests may start.
    case release
}

/// A request for a shard, and what to do with the answer. A class: it rides along with the
/// request through the action queue and the link's in-flight queue, where a reference is cheap to
/// move and a large enum is not (callgrind: about 800 instructions per request as a value).
final class ShardSend {
    let shard: Int
    let request: ShardRequest
    let expected: ExpectedReply
    let then: ProxyContinuation

    init(shard: Int, request: ShardRequest, expected: ExpectedReply, then: ProxyContinuation) {
        self.shard = shard
        self.request = request
        self.expected = expected
        self.then = then
    }
}

extension ProxyAction {
    /// Send `request` to `shard`; its answer goes back to the engine with `then`.
    static func send(
        shard: Int,
        _ request: ShardRequest,
        expecting expected: ExpectedReply,
        then: ProxyContinuation
    ) -> ProxyAction {
        .send(ShardSend(shard: shard, request: request, expected: expected, then: then))
    }
}

/// A request to a shard: bytes built once, or a one-key retrieval written straight into the
/// connection's outbound buffer (the proxy's most common request then needs no buffer of its own).
enum ShardRequest {
    case bytes(ByteBuffer)
    case retrieval(MemcacheOperation, exptime: Int32, key: ByteBuffer)

    func write(into buffer: inout ByteBuffer) {
        switch self {
        case .bytes(let bytes):
            buffer.writeImmutableBuffer(bytes)
        case .retrieval(let operation, let exptime, let key):
            MemcacheForwarding.writeRetrieval(operation: operation, exptime: exptime, key: key, into: &buffer)
        }
    }
}

/// What to do with a shard's answer: the route and its state.
enum ProxyContinuation {
    /// Nothing (a touch propagated to the other replicas, a read repair's copy).
    case ignore
    /// A single-key get/gets/gat/gats.
    case readOne(ReadOne)
    /// One shard's part of a multi-key read round.
    case readRound(RetrievalState, shard: Int, indices: [Int])
    /// The TTL of a value read repair copies, from the replica that had it.
    case repairSource(ReadRepair)
    /// One replica's copy of a replicated write, with the transport retries left.
    case write(WriteGather, replica: Int, retries: Int)
    /// A compare-and-swap on the primary.
    case swap(SwapState)
    /// A swapped value copied to another replica, with the transport retries left.
    case swapCopy(SwapState, replica: Int, retries: Int)
    /// An mg on `target`, the next replica on a miss.
    case metaGet(MetaGetState, target: Int)
    /// A reply passed on to the client as it is.
    case forward(ReplySlot)
    /// One shard's part of a flush_all or a `stats cachedump`.
    case broadcast(BroadcastState)
}

extension ShardReply {
    /// The bytes to pass back to the client.
    var raw: ByteBuffer {
        switch self {
        case .line(let line): return line.raw
        case .meta(let meta): return meta.raw
        case .value(let value):
            var buffer = ByteBuffer()
            buffer.writeRetrievalReply(hits: value.raw)
            return buffer
        case .values(let values):
            var buffer = ByteBuffer()
            for value in values {
                var raw = value.raw
                buffer.writeBuffer(&raw)
            }
            buffer.writeStaticString("END\r\n")
            return buffer
        case .stats(let stats):
            var buffer = ByteBuffer()
            for (name, value) in stats { buffer.writeString("STAT \(name) \(value)\r\n") }
            buffer.writeStaticString("END\r\n")
            return buffer
        }
    }

    /// `SERVER_ERROR`: the shard failed, another replica may do better. (`ERROR` and
    /// `CLIENT_ERROR` blame the request, and are the answer.)
    var isServerFailure: Bool {
        if case .line(let line) = self { return line.status == .serverError }
        return false
    }

    /// `ERROR` or `CLIENT_ERROR`: the request is at fault, on any replica.
    var blamesRequest: Bool {
        if case .line(let line) = self { return line.status == .clientError || line.status == .error }
        return false
    }

    var metaCode: String? {
        if case .meta(let meta) = self { return meta.code }
        return nil
    }
}
