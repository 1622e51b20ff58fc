import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Logging
import NIOCore
import NIOEmbedded
import NIOExtras
import Testing

@testable import FlotillaProxy

@Suite("ProxyConnectionHandler on an EmbeddedChannel: what the proxy answers itself, in order")
struct ProxyConnectionHandlerTests {
    /// A handler over two shards that are marked down: every shard request fails at once.
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let specs = try ShardSpec.parseList("127.0.0.1:1,127.0.0.1:2")
        var configuration = ProxyConfiguration(shards: specs)
        configuration.failureLimit = 1
        let router = try ShardRouter(shards: specs, distribution: .ring, replicas: 2)
        let health = ShardHealth(
            shardNames: specs.map(\.address),
            failureLimit: 1,
            maxHints: 16,
            logger: Logger(label: "test")
        )
        health.recordFailure(0, reason: "test")
        health.recordFailure(1, reason: "test")
        let proxy = ProxyContext(configuration: configuration, router: router, health: health, version: "9.9.9")
        let loop = channel.embeddedEventLoop
        let writes = LoopWrites(loop: loop)
        let recorder = OperationRecorder(operations: ProxyServer.operationNames, group: loop)
        let traffic = OperationRecorder(operations: specs.map(\.address), group: loop)
        let links = try specs.indices.map { index in
            ShardLink(
                upstream: index,
                loop: loop,
                address: try SocketAddress(ipAddress: "127.0.0.1", port: index + 1),
                health: health,
                timeout: configuration.shardTimeout,
                maxOutstanding: configuration.maxOutstandingPerShard,
                traffic: traffic.shard(on: loop),
                writes: writes
            )
        }
        let shards = LoopShards(links: links, writes: writes, loop: loop, timeout: .seconds(1))
        let handler = ProxyConnectionHandler(
            decoder: MemcacheRequestDecoder(configuration: .init(maxItemSize: 1 << 20)),
            proxy: proxy,
            shards: shards,
            recorder: recorder.shard(on: loop),
            requestMemory: RequestMemory(limit: 64 << 20)
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 11211)).wait()
        return channel
    }

    /// The bytes written since the last call, and in how many writes.
    private func writes(_ channel: EmbeddedChannel) throws -> (text: String, count: Int) {
        var text = ""
        var count = 0
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
            count += 1
        }
        return (text, count)
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        try writes(channel).text
    }

    @Test("a pipelined burst is answered in order in one write, then quit closes the connection")
    func pipelinedBurstThenQuit() throws {
        let channel = try makeChannel()
        let burst = "version\r\nverbosity 1\r\nbogus\r\nget k\r\nmn\r\nquit\r\nversion\r\n"
        try channel.writeInbound(ByteBuffer(string: burst))
        let replies = try writes(channel)
        #expect(replies.text == "VERSION 9.9.9\r\nOK\r\nERROR\r\nSERVER_ERROR no live shard for the key\r\nMN\r\n")
        #expect(replies.count == 1)
        #expect(!channel.isActive)
    }

    @Test("a request split across reads is answered once it is whole")
    func splitRequest() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "vers"))
        #expect(try written(channel) == "")
        try channel.writeInbound(ByteBuffer(string: "ion\r\nverbosity 0 noreply\r\nversion\r\n"))
        #expect(try written(channel) == "VERSION 9.9.9\r\nVERSION 9.9.9\r\n")
        #expect(channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("a drain closes an idle connection after its replies")
    func drainClosesIdle() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "version\r\n"))
        #expect(try written(channel) == "VERSION 9.9.9\r\n")
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!channel.isActive)
    }
}
