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

    @Test("lru_crawler metadump lists each live item as memcached does, and END")
    func metadumpListsLiveItems() throws {
        let channel = try makeChannel()
        _ = try exchange(
            channel,
            "set a%b 5 0 1\r\nx\r\nset h\u{e9} 0 100 2\r\nhi\r\nset gone 0 -1 1\r\nx\r\nget h\u{e9}\r\n"
        )
        let dump = try exchange(channel, "lru_crawler metadump all\r\nlru_crawler metadump 2\r\nversion\r\n")
        // A bare newline after each item, CRLF after END (one Character: split on both).
        let lines = dump.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        #expect(lines.count == 6, "\(dump)")
        let items = lines.prefix(2).sorted()
        #expect(items[0].hasPrefix("key=a%25b exp=-1 la="))
        #expect(items[0].contains(" fetch=no cls=1 size="))
        #expect(items[1].hasPrefix("key=h%C3%A9 exp="))
        #expect(items[1].contains(" fetch=yes cls=1 size="))
        let expiry = items[1].split(separator: " ")[1].dropFirst(4)
        let lastAccess = items[1].split(separator: " ")[2].dropFirst(3)
        #expect(Int(expiry)! - Int(lastAccess)! == 100)
        // The expired item is not listed; class 2 holds nothing; the next request follows END.
        #expect(dump.hasSuffix("\nEND\r\nEND\r\nVERSION \(CacheContext.protocolVersion)\r\n"))
    }

    @Test("a metadump larger than one turn goes on in later event-loop turns, requests after it wait")
    func metadumpYieldsToTheEventLoop() throws {
        let channel = try makeChannel()
        let items = 6_000
        let key = String(repeating: "k", count: 200)
        var sets = ""
        for index in 0..<items { sets += "set \(key)\(index) 0 0 1 noreply\r\nx\r\n" }
        #expect(try exchange(channel, sets) == "")
        var dump = try exchange(channel, "lru_crawler metadump all\r\nversion\r\n")
        #expect(!dump.contains("END\r\n"), "a 1.6 MB dump written in one turn")
        var turns = 1
        while !dump.contains("END\r\n"), turns < 50 {
            // The next turn is due a moment later, so that the loop polls its sockets in between.
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
            dump += try exchange(channel, "")
            turns += 1
        }
        #expect(turns > 1)
        #expect(dump.hasSuffix("END\r\nVERSION \(CacheContext.protocolVersion)\r\n"))
        #expect(dump.split(separator: "\n").filter { $0.hasPrefix("key=k") }.count == items)
    }

    @Test("a metadump to a client that reads slowly pauses and goes on where it stopped, listing every item once")
    func metadumpPausesWithASlowClient() throws {
        let channel = try makeChannel()
        let items = 20_000
        var sets = ""
        for index in 0..<items { sets += "set key\(index) 0 0 1 noreply\r\nx\r\n" }
        #expect(try exchange(channel, sets) == "")
        channel.isWritable = false
        var dump = try exchange(channel, "lru_crawler metadump all\r\nversion\r\n")
        var pauses = 0
        while !dump.contains("END\r\n"), pauses < 100 {
            pauses += 1
            channel.isWritable = true
            channel.pipeline.fireChannelWritabilityChanged()
            channel.isWritable = false
            dump += try exchange(channel, "")
        }
        #expect(pauses > 1)
        let keys = dump.split(separator: "\n").filter { $0.hasPrefix("key=") }.map { $0.split(separator: " ")[0] }
        #expect(keys.count == items)
        #expect(Set(keys).count == items)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        dump += try exchange(channel, "")
        #expect(dump.hasSuffix("END\r\nVERSION \(CacheContext.protocolVersion)\r\n"))
    }

    @Test func crawlReclaimsExpiredItems() throws {
        let channel = try makeChannel()
        _ = try exchange(channel, "set gone 0 -1 1\r\nx\r\nset kept 0 0 1\r\nx\r\n")
        #expect(try exchange(channel, "lru_crawler crawl all\r\n") == "OK\r\n")
        let stats = try exchange(channel, "stats\r\n")
        #expect(stats.contains("STAT curr_items 1\r\n"))
        #expect(stats.contains("STAT reclaimed 1\r\n"))
    }
}
