import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore

/// This event loop's pipelined connection to one shard: the server's generic link, speaking
/// memcache (`MemcacheLink`).
typealias ShardLink = PipelinedLink<MemcacheLink>

/// Why a request to a shard got no reply.
typealias ShardFailure = LinkFailure

extension LinkFailure {
    /// In the proxy's words, as its `SERVER_ERROR` replies give it: "shard timeout".
    var message: String { message(for: "shard") }
}

/// The memcache text protocol on a link: replies decoded as the request expects them, delivered
/// to the client connection that sent the request, with what its engine does next.
enum MemcacheLink: PipelinedLinkProtocol {
    typealias Expectation = ExpectedReply
    typealias Reply = ShardReply
    typealias Decoder = MemcacheReplyDecoder
    typealias Callback = ShardCallback

    static func makeDecoder() -> MemcacheReplyDecoder {
        MemcacheReplyDecoder()
    }

    @inline(__always)
    static func decode(
        _ decoder: inout MemcacheReplyDecoder,
        _ buffer: inout ByteBuffer,
        expecting expected: ExpectedReply
    ) throws -> ShardReply? {
        try decoder.decode(&buffer, expecting: expected)
    }

    @inline(__always)
    static func deliver(_ result: consuming Result<ShardReply, LinkFailure>, to callback: ShardCallback) {
        callback.receiver.shardAnswered(callback.send.then, result)
    }
}

/// Who gets a shard's reply: the client connection that sent the request, and the request with
/// what its engine does with the answer. Two references: cheap to queue.
struct ShardCallback {
    let receiver: any ShardAnswerReceiver
    let send: ShardSend
}

/// A client connection, as the shard links see it.
protocol ShardAnswerReceiver: AnyObject {
    func shardAnswered(_ continuation: ProxyContinuation, _ result: Result<ShardReply, ShardFailure>)
}

extension ShardHealth: LinkHealth {}

/// This event loop's links to every shard, and a timer that expires their late requests.
final class LoopShards {
    let links: [ShardLink]
    /// The loop's write batching, shared by its shard links and its clients.
    let writes: LoopWrites
    /// Seeds for the clients' replica picks, so that no two draw the same sequence.
    private var seeds: SplitMix64

    init(links: [ShardLink], writes: LoopWrites, loop: any EventLoop, timeout: Duration) {
        self.links = links
        self.writes = writes
        self.seeds = SplitMix64(seed: UInt64(UInt(bitPattern: ObjectIdentifier(loop).hashValue)))
        let milliseconds = timeout.nanoseconds / 1_000_000
        let every = TimeAmount.milliseconds(max(5, min(100, milliseconds / 5)))
        let bound = NIOLoopBound(links, eventLoop: loop)
        loop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            let now = NIODeadline.now().uptimeNanoseconds
            for link in bound.value { link.expire(now: now) }
        }
    }

    /// A seed for a new client's replica picks.
    func nextSeed() -> UInt64 {
        seeds.next()
    }
}
