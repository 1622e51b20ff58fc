import FlotillaMemcache
import FlotillaServer
import NIOCore
import NIOEmbedded
import NIOExtras
import Testing

@testable import FlotillaCache

/// The connection handler on an `EmbeddedChannel`: pipelined requests in, replies out.
@Suite("Connection handler")
struct ConnectionHandlerTests {
    func makeChannel(requestMemory: RequestMemory = RequestMemory(limit: 64 << 20)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let configuration = CacheServer.Configuration()
        let store = StripedStore(limitBytes: 8 << 20, maxItemSize: 1 << 20)
        let context = CacheContext(configuration: configuration, connections: ConnectionCounters(), threads: 1)
        let recorder = OperationRecorder(operations: CacheServer.operationNames, group: channel.embeddedEventLoop)
        let handler = MemcacheConnectionHandler(
            decoder: MemcacheRequestDecoder(),
            engine: CacheEngine(store: store, context: context),
            recorder: recorder.shard(on: channel.embeddedEventLoop),
            requestMemory: requestMemory
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 11211)).wait()
        #expect(channel.isActive)
        return channel
    }

    func exchange(_ channel: EmbeddedChannel, _ input: String) throws -> String {
        try channel.writeInbound(ByteBuffer(string: input))
        var output = ""
        while let reply = try channel.readOutbound(as: ByteBuffer.self) {
            output += String(buffer: reply)
        }
        return output
    }

    @Test func answersPipelinedRequestsInOrder() throws {
        let channel = try makeChannel()
        let reply = try exchange(
            channel,
            "set a 0 0 1\r\nx\r\nget a nope\r\nincr a 1\r\ndelete a\r\nmg a v\r\nbogus\r\nmn\r\n"
        )
        #expect(
            reply == "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
                + "CLIENT_ERROR cannot increment or decrement non-numeric value\r\nDELETED\r\nEN\r\nERROR\r\nMN\r\n"
        )
        #expect(channel.isActive)
    }

    @Test("half-received requests share --request-memory: the client past it is refused, the others go on")
    func requestMemoryRefusesPastTheBudget() throws {
        let memory = RequestMemory(limit: 10_000)
        let first = try makeChannel(requestMemory: memory)
        let second = try makeChannel(requestMemory: memory)
        // 6,000 of a 9,000-byte value: held, and charged.
        #expect(try exchange(first, "set a 0 0 9000\r\n" + String(repeating: "x", count: 6_000)) == "")
        #expect(memory.bytes > 6_000)
        // Another 6,000 would pass the budget: refused, as memcached words it, and closed.
        let refused = try exchange(second, "set b 0 0 9000\r\n" + String(repeating: "y", count: 6_000))
        #expect(refused == "SERVER_ERROR out of memory reading request\r\n")
        #expect(!second.isActive)
        #expect(memory.refused == 1)
        // The first finishes its value and is answered; its charge is returned.
        let stored = try exchange(first, String(repeating: "x", count: 3_000) + "\r\nget a\r\n")
        #expect(stored.hasPrefix("STORED\r\nVALUE a 0 9000\r\n"))
        #expect(memory.bytes == 0)
    }

    @Test func quitClosesAfterEarlierReplies() throws {
        let channel = try makeChannel()
        let reply = try exchange(channel, "version\r\nquit\r\nversion\r\n")
        #expect(reply.hasPrefix("VERSION 1.6.18-flotilla"))
        #expect(reply.split(separator: "\n").count == 1)
        #expect(!channel.isActive)
    }

    @Test func quiesceWaitsForTheRequestInProgress() throws {
        let channel = try makeChannel()
        #expect(try exchange(channel, "set k 0 0 5\r\nhel") == "")
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(channel.isActive)
        #expect(try exchange(channel, "lo\r\n") == "STORED\r\n")
        #expect(!channel.isActive)
    }
}
