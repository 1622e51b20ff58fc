import FlotillaMemcache
import FlotillaTestSupport
import Foundation
import NIOCore
import Testing

/// The proxy's wire path against a real memcached: client bytes are decoded with `MemcacheRequestDecoder`, written
/// for a shard with `MemcacheForwarding`, and the shard's answer decoded with `MemcacheReplyDecoder`. The same client
/// bytes go unchanged to a second memcached that sees the same commands in the same order, and what the proxy would
/// hand back (the reply's raw bytes, less what `noreply` and `q` silence) must equal that memcached's own answer.
///
/// Two fresh memcached instances that see the same stores hand out the same CAS uniques, so replies carrying them
/// compare byte for byte.
@Suite(
    "Forwarding: decode, forward and read back against memcached",
    .serialized,
    .enabled(if: PeerProcess.memcachedTestsEnabled, Comment(rawValue: PeerProcess.memcachedMissingMessage))
)
struct ForwardingAgainstMemcachedTests {
    @Test func everyCommandRoundTripsToTheBytesMemcachedSends() throws {
        guard PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
            return
        }
        try PeerProcess.withMemcached { directPort in
            try PeerProcess.withMemcached { shardPort in
                let pair = try ConnectionPair(directPort: directPort, shardPort: shardPort)
                try pair.check("version\r\n")
                try pair.check("set a 5 0 3\r\nabc\r\n", is: "STORED\r\n")
                try pair.check("set b 0 0 2 noreply\r\nhi\r\n", is: "")
                try pair.check("get a b c\r\n", is: "VALUE a 5 3\r\nabc\r\nVALUE b 0 2\r\nhi\r\nEND\r\n")
                let gets = try pair.check("gets a\r\n")
                guard case .value(let value) = gets, let cas = value.cas else {
                    Issue.record("gets returned \(gets)")
                    return
                }
                try pair.check("cas a 0 0 1 \(cas)\r\nz\r\n", is: "STORED\r\n")
                try pair.check("cas a 0 0 1 \(cas)\r\ny\r\n", is: "EXISTS\r\n")
                try pair.check("cas gone 0 0 1 1\r\ny\r\n", is: "NOT_FOUND\r\n")
                try pair.check("append a 0 0 2\r\n!!\r\n", is: "STORED\r\n")
                try pair.check("prepend a 0 0 2 noreply\r\n<<\r\n", is: "")
                try pair.check("prepend gone 0 0 1\r\nx\r\n", is: "NOT_STORED\r\n")
                try pair.check("add a 0 0 1\r\nx\r\n", is: "NOT_STORED\r\n")
                try pair.check("replace a 3 0 4\r\nabcd\r\n", is: "STORED\r\n")
                try pair.check("set n 0 0 2\r\n10\r\n", is: "STORED\r\n")
                try pair.check("incr n 5\r\n", is: "15\r\n")
                try pair.check("decr n 100\r\n", is: "0\r\n")
                try pair.check("incr n 18446744073709551615\r\n", is: "18446744073709551615\r\n")
                try pair.check("incr n 1 noreply\r\n", is: "")
                try pair.check("incr gone 1\r\n", is: "NOT_FOUND\r\n")
                try pair.check("incr a 1\r\n", is: "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
                try pair.check("touch a 1000\r\n", is: "TOUCHED\r\n")
                try pair.check("touch gone 1000\r\n", is: "NOT_FOUND\r\n")
                // incr rewrites a value in place when the result is no longer: 0 keeps the width of 2^64-1.
                let zero = "0" + String(repeating: " ", count: 19)
                try pair.check("gat 0 a n\r\n", is: "VALUE a 3 4\r\nabcd\r\nVALUE n 0 20\r\n\(zero)\r\nEND\r\n")
                try pair.check("gats 0 a gone\r\n")
                try pair.check("delete b\r\n", is: "DELETED\r\n")
                try pair.check("delete b\r\n", is: "NOT_FOUND\r\n")
                try pair.check("delete n noreply\r\n", is: "")

                // Meta commands: flags echoed in order, q applied by the proxy, binary keys sent again in base64.
                try pair.check("ms m1 2 T0 F7\r\nhi\r\n", is: "HD\r\n")
                try pair.check("ms m2 2 q\r\nho\r\n", is: "")
                try pair.check("mg m1 v f k s O42\r\n", is: "VA 2 f7 km1 s2 O42\r\nhi\r\n")
                try pair.check("mg m2 v q k\r\n", is: "VA 2 km2\r\nho\r\n")
                try pair.check("mg m1\r\n", is: "HD\r\n")
                try pair.check("mg gone v\r\n", is: "EN\r\n")
                try pair.check("mg gone v q\r\n", is: "")
                try pair.check("mg m1 c v\r\n")
                try pair.check("ms m1 2 MA\r\n!!\r\n", is: "HD\r\n")
                try pair.check("ms gone 2 MR\r\nxx\r\n", is: "NS\r\n")
                try pair.check("ms m1 2 C1\r\nxx\r\n", is: "EX\r\n")
                try pair.check("ms Zm9v 3 b\r\nbar\r\n", is: "HD\r\n")
                try pair.check("ms AAEC/w== 3 b q\r\nbin\r\n", is: "")
                try pair.check("mg Zm9v b v k c\r\n")
                try pair.check("mg AAEC/w== b v k\r\n", is: "VA 3 kAAEC/w== b\r\nbin\r\n")
                try pair.check("get foo\r\n", is: "VALUE foo 0 3\r\nbar\r\nEND\r\n")
                try pair.check("md Zm9v b q\r\n", is: "")
                try pair.check("md Zm9v b\r\n", is: "NF\r\n")
                // memcached 1.6 answers a quiet md miss all the same.
                try pair.check("md gone q\r\n", is: "NF\r\n")
                try pair.check("md m2 I T30\r\n", is: "HD\r\n")
                try pair.check("ma cnt N0 J5 v\r\n", is: "VA 1\r\n5\r\n")
                try pair.check("ma cnt D3 v t\r\n", is: "VA 1 t-1\r\n8\r\n")
                try pair.check("ma cnt MD D100 q\r\n", is: "")
                try pair.check("ma cnt v\r\n", is: "VA 1\r\n1\r\n")
                try pair.check("ma gone\r\n", is: "NF\r\n")
                try pair.check("ma m1 v\r\n", is: "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
                try pair.check("mn\r\n", is: "MN\r\n")
                try pair.checkDebug(key: "m1", command: "me m1\r\n")
                try pair.checkDebug(key: "Zm9v", command: "me Zm9v b\r\n", present: false)

                try pair.checkStats("stats\r\n")
                try pair.checkStats("stats settings\r\n")
                try pair.check("flush_all\r\n", is: "OK\r\n")
                try pair.check("get a m1\r\n", is: "END\r\n")
                try pair.check("flush_all 0 noreply\r\n", is: "")
                pair.close()
            }
        }
    }

    @Test func aPipelinedBigMultiGetIsDecodedAsItArrives() throws {
        guard PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
            return
        }
        try PeerProcess.withMemcached { directPort in
            try PeerProcess.withMemcached { shardPort in
                let pair = try ConnectionPair(directPort: directPort, shardPort: shardPort)
                let keys = (0..<120).map { "big:\($0)" }
                var client = ""
                for (index, key) in keys.enumerated() {
                    let value = String(repeating: Character(UnicodeScalar(UInt8(65 + index % 26))), count: 20_000)
                    client += "set \(key) \(index) 0 \(value.utf8.count)\r\n\(value)\r\n"
                }
                client += "gets \(keys.joined(separator: " "))\r\n"
                let replies = try pair.forwardPipelined(client)
                #expect(replies.count == keys.count + 1)
                #expect(replies.prefix(keys.count).allSatisfy { pair.proxyOutput($0, silenced: false) == "STORED\r\n" })
                guard replies.count == keys.count + 1, case .values(let values) = replies[keys.count] else {
                    Issue.record("expected the multi-get's values")
                    return
                }
                #expect(values.map { String(buffer: $0.key) } == keys)
                #expect(values.map(\.flags) == (0..<UInt32(keys.count)).map { $0 })
                #expect(values.allSatisfy { $0.data.readableBytes == 20_000 && $0.cas != nil })
                let direct = pair.sendDirect(client)
                let forwarded = replies.map { pair.proxyOutput($0, silenced: false) }.joined()
                #expect(forwarded == direct, "pipelined replies differ from memcached's")
                pair.close()
            }
        }
    }
}

/// A connection to the reference memcached (sent the client's bytes as is) and one to the shard (sent what the proxy
/// forwards), kept in step.
private final class ConnectionPair {
    let direct: WireClient
    let shard: WireClient
    static let timeout = Duration.seconds(10)

    init(directPort: UInt16, shardPort: UInt16) throws {
        direct = try WireClient(port: directPort)
        shard = try WireClient(port: shardPort)
    }

    func close() {
        direct.close()
        shard.close()
    }

    /// Forwards `client`, then checks that the proxy's answer equals memcached's (and `expected`, when given).
    @discardableResult
    func check(
        _ client: String,
        is expected: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    )
        throws -> ShardReply
    {
        let (reply, silenced) = try forward(client, sourceLocation: sourceLocation)
        let direct = sendDirect(client)
        let proxied = proxyOutput(reply, silenced: silenced)
        #expect(proxied == direct, "\(escape(client))", sourceLocation: sourceLocation)
        if let expected {
            #expect(direct == expected, "memcached answered \(escape(client))", sourceLocation: sourceLocation)
        }
        if direct.isEmpty {
            // What memcached keeps quiet about still reached the proxy, which needs it to finish the request.
            #expect(!reply.isFailure, sourceLocation: sourceLocation)
            if case .meta(let meta) = reply {
                #expect(["HD", "EN"].contains(meta.code), "\(escape(client))", sourceLocation: sourceLocation)
            }
        }
        return reply
    }

    /// `me` replies carry the seconds since last access, which may tick between the two servers: compare the shape.
    func checkDebug(key: String, command: String, present: Bool = true) throws {
        let (reply, _) = try forward(command)
        let direct = sendDirect(command)
        guard case .meta(let meta) = reply else {
            Issue.record("me returned \(reply)")
            return
        }
        if present {
            #expect(meta.code == "ME" && meta.flags.first.map { String(buffer: $0) } == key)
            #expect(meta.flags.dropFirst().map { String(buffer: $0).prefix { $0 != "=" } } == fieldNames(direct))
            #expect(direct.hasPrefix("ME \(key) "))
        } else {
            #expect(meta.code == "EN" && direct == "EN\r\n")
        }
    }

    /// Statistics differ between servers; both must decode to the same names.
    func checkStats(_ command: String) throws {
        let (reply, _) = try forward(command)
        let direct = sendDirect(command)
        guard case .stats(let stats) = reply else {
            Issue.record("\(escape(command)) returned \(reply)")
            return
        }
        var buffer = ByteBuffer(string: direct)
        var decoder = MemcacheReplyDecoder()
        guard case .stats(let reference) = try decoder.decode(&buffer, expecting: .stats) else {
            Issue.record("memcached's \(escape(command)) did not decode")
            return
        }
        #expect(!stats.isEmpty && stats.map(\.name) == reference.map(\.name))
        if command == "stats\r\n" {
            #expect(stats.first { $0.name == "version" }?.value == reference.first { $0.name == "version" }?.value)
        }
    }

    /// Decodes the client's bytes, forwards the request to the shard and decodes its reply.
    func forward(
        _ client: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (reply: ShardReply, silenced: Bool) {
        var requestDecoder = MemcacheRequestDecoder()
        var input = ByteBuffer(string: client)
        let decoded = requestDecoder.decode(buffer: &input)
        let request = try #require(decoded, sourceLocation: sourceLocation)
        #expect(input.readableBytes == 0, sourceLocation: sourceLocation)
        let (bytes, expected, silenced) = try #require(Self.forwardable(request), sourceLocation: sourceLocation)
        try #require(shard.send(Array(bytes.readableBytesView)), sourceLocation: sourceLocation)
        let received = shard.read(timeout: Self.timeout) { Self.replyIsComplete($0, expected) }
        var buffer = ByteBuffer(bytes: received.bytes)
        var decoder = MemcacheReplyDecoder()
        let reply = try #require(try decoder.decode(&buffer, expecting: expected), sourceLocation: sourceLocation)
        #expect(buffer.readableBytes == 0, "bytes after the reply", sourceLocation: sourceLocation)
        return (reply, silenced)
    }

    /// Sends all of `client` forwarded at once and decodes the replies as the bytes arrive, in whatever reads they
    /// come.
    func forwardPipelined(_ client: String) throws -> [ShardReply] {
        var requestDecoder = MemcacheRequestDecoder()
        var input = ByteBuffer(string: client)
        var output = ByteBuffer()
        var expectations: [ExpectedReply] = []
        while let request = requestDecoder.decode(buffer: &input) {
            let (bytes, expected, _) = try #require(Self.forwardable(request))
            output.writeImmutableBuffer(bytes)
            expectations.append(expected)
        }
        try #require(shard.send(Array(output.readableBytesView)))
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer()
        var replies: [ShardReply] = []
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: Self.timeout)
        while replies.count < expectations.count, clock.now < deadline {
            let chunk = shard.read(timeout: .milliseconds(200)) { !$0.isEmpty }
            buffer.writeBytes(chunk.bytes)
            while replies.count < expectations.count,
                let reply = try decoder.decode(&buffer, expecting: expectations[replies.count])
            {
                replies.append(reply)
            }
            if chunk.outcome == .closed { break }
        }
        #expect(buffer.readableBytes == 0)
        return replies
    }

    /// Sends the client's bytes to the reference memcached as they are, with `mn` after them so that a silent reply
    /// is known to be complete; returns the reply without the `MN`.
    func sendDirect(_ client: String) -> String {
        direct.send(Array((client + "mn\r\n").utf8))
        // The client's own `mn`s answer `MN` too; the test's values never hold one.
        let sentinels = client.components(separatedBy: "mn\r\n").count
        let result = direct.read(timeout: Self.timeout) { bytes in
            String(decoding: bytes, as: UTF8.self).components(separatedBy: "MN\r\n").count > sentinels
                && bytes.suffix(4).elementsEqual("MN\r\n".utf8)
        }
        #expect(result.outcome == .satisfied, "memcached did not answer \(escape(client))")
        return String(decoding: result.bytes.dropLast(4), as: UTF8.self)
    }

    /// What the proxy hands its client: the reply's raw bytes, or nothing when the client asked for silence.
    func proxyOutput(_ reply: ShardReply, silenced: Bool) -> String {
        switch reply {
        case .value(let value):
            return String(buffer: value.raw) + "END\r\n"
        case .values(let values):
            return values.map { String(buffer: $0.raw) }.joined() + "END\r\n"
        case .line(let line):
            // memcached keeps quiet about everything after noreply, errors of the data store included.
            return silenced && !line.isFailure ? "" : String(buffer: line.raw)
        case .meta(let meta):
            // Quiet mode hides the outcomes that need no answer: HD, and EN of mg (memcached 1.6 still sends NF).
            return silenced && ["HD", "EN"].contains(meta.code) ? "" : String(buffer: meta.raw)
        case .stats(let stats):
            return stats.map { "STAT \($0.name) \($0.value)\r\n" }.joined() + "END\r\n"
        }
    }

    /// The request as the proxy forwards it, what it expects back, and whether the client asked for silence.
    static func forwardable(_ request: MemcacheRequest) -> (ByteBuffer, ExpectedReply, Bool)? {
        var output = ByteBuffer()
        switch request {
        case .retrieval(let retrieval) where retrieval.keys.count == 1:
            // The proxy's own path for one key: the one-key writer and the one-key reply decoding.
            MemcacheForwarding.writeRetrieval(
                operation: retrieval.operation,
                exptime: retrieval.exptime,
                key: retrieval.keys[0],
                into: &output
            )
            return (output, .retrievalOfOne, false)
        case .retrieval(let retrieval):
            MemcacheForwarding.writeRetrieval(
                operation: retrieval.operation,
                exptime: retrieval.exptime,
                keys: retrieval.keys,
                into: &output
            )
            return (output, .retrieval, false)
        case .storage(let storage):
            MemcacheForwarding.writeStorage(storage, into: &output)
            return (output, .line, storage.noreply)
        case .delete(let key, let noreply):
            MemcacheForwarding.writeDelete(key: key, into: &output)
            return (output, .line, noreply)
        case .arithmetic(let arithmetic):
            MemcacheForwarding.writeArithmetic(arithmetic, into: &output)
            return (output, .line, arithmetic.noreply)
        case .touch(let key, let exptime, let noreply):
            MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &output)
            return (output, .line, noreply)
        case .flushAll(let delay, let noreply):
            MemcacheForwarding.writeFlushAll(delay: delay, into: &output)
            return (output, .line, noreply)
        case .version:
            MemcacheForwarding.writeVersion(into: &output)
            return (output, .version, false)
        case .stats(let arguments):
            MemcacheForwarding.writeStats(arguments: arguments, into: &output)
            return (output, .stats, false)
        case .meta(let meta):
            MemcacheForwarding.writeMeta(meta, into: &output)
            return (output, .meta, MemcacheForwarding.metaRequestWasQuiet(meta))
        default:
            return nil
        }
    }

    /// True once `bytes` hold a whole reply, or bytes that cannot start one (decoding again reports why).
    private static func replyIsComplete(_ bytes: [UInt8], _ expected: ExpectedReply) -> Bool {
        var buffer = ByteBuffer(bytes: bytes)
        var decoder = MemcacheReplyDecoder()
        do {
            return try decoder.decode(&buffer, expecting: expected) != nil
        } catch {
            return true
        }
    }

    private func fieldNames(_ meLine: String) -> [Substring] {
        meLine.split(separator: "\r\n").first.map { line in
            line.split(separator: " ").dropFirst(2).map { $0.prefix { $0 != "=" } }
        } ?? []
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\r\n", with: "\\r\\n")
    }
}
