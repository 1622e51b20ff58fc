import NIOCore
import NIOTestUtils
import Testing

@testable import FlotillaMemcache

/// Decodes `input` fed in chunks of `chunk` bytes (0: all at once), returning every request.
func decodeAll(
    _ input: String,
    chunk: Int = 0,
    configuration: MemcacheRequestDecoder.Configuration = .init()
)
    -> [MemcacheRequest]
{
    var decoder = MemcacheRequestDecoder(configuration: configuration)
    var buffer = ByteBuffer()
    var requests: [MemcacheRequest] = []
    let bytes = Array(input.utf8)
    let step = chunk == 0 ? max(bytes.count, 1) : chunk
    var offset = 0
    while offset < bytes.count {
        buffer.writeBytes(bytes[offset..<min(offset + step, bytes.count)])
        offset += step
        while let request = decoder.decode(buffer: &buffer) { requests.append(request) }
    }
    return requests
}

func replyText(_ request: MemcacheRequest) -> String? {
    if case .reply(let reply) = request { return reply.message.description }
    return nil
}

@Suite("Memcache request decoder")
struct DecoderTests {
    @Test func verifiesUnderNIOsDripFeedingHarness() throws {
        let key = ByteBuffer(string: "k")
        try ByteToMessageDecoderVerifier.verifyDecoder(
            stringInputOutputPairs: [
                ("get k\r\n", [.retrieval(RetrievalRequest(operation: .get, exptime: 0, keys: [key]))]),
                ("delete k noreply\r\n", [.delete(key: key, noreply: true)]),
                ("version\r\n", [.version]),
                (
                    "set k 5 0 2\r\nhi\r\n",
                    [
                        .storage(
                            StorageRequest(
                                mode: .set,
                                key: key,
                                flags: 5,
                                exptime: 0,
                                casUnique: 0,
                                noreply: false,
                                data: ByteBuffer(string: "hi")
                            )
                        )
                    ]
                ),
            ],
            decoderFactory: { MemcacheRequestDecoder() }
        )
    }

    @Test(arguments: [0, 1, 3, 7])
    func pipelinedCommandsSurviveAnySplit(chunk: Int) {
        let requests = decodeAll("set a 0 0 3\r\nabc\r\nget a b\r\nincr n 5\r\nmn\r\nquit\r\n", chunk: chunk)
        #expect(requests.count == 5)
        guard case .storage(let storage) = requests[0] else {
            Issue.record("expected a storage request, got \(requests[0])")
            return
        }
        #expect(String(buffer: storage.data) == "abc")
        guard case .retrieval(let retrieval) = requests[1] else {
            Issue.record("expected a retrieval")
            return
        }
        #expect(retrieval.keys.map { String(buffer: $0) } == ["a", "b"])
        #expect(requests[4] == .quit)
    }

    @Test func badDataChunkIsRefusedAndTheRestIsReadAsCommands() {
        let requests = decodeAll("set a 0 0 3\r\nxxxxx\r\nget a\r\n")
        #expect(replyText(requests[0]) == "CLIENT_ERROR bad data chunk")
        #expect(replyText(requests[1]) == "ERROR")  // the leftover "\r\n" is an empty command
        guard case .retrieval = requests[2] else {
            Issue.record("expected get after the bad chunk")
            return
        }
    }

    @Test func tooLargeValueIsAnsweredAndSkippedAsItArrives() {
        let configuration = MemcacheRequestDecoder.Configuration(maxItemSize: 1024)
        let value = String(repeating: "v", count: 5000)
        let requests = decodeAll("set big 0 0 5000\r\n\(value)\r\nmn\r\n", chunk: 100, configuration: configuration)
        #expect(requests.count == 2)
        guard case .tooLarge(let operation, let key, _, let drops) = requests[0] else {
            Issue.record("expected tooLarge, got \(requests[0])")
            return
        }
        #expect(operation == .set && String(buffer: key) == "big" && drops)
        #expect(requests[1].isNoop)
    }

    @Test func longNonRetrievalLineClosesTheConnection() {
        let requests = decodeAll(String(repeating: "x", count: 3000), chunk: 500)
        #expect(requests == [.close(reason: .lineTooLong)])
    }

    @Test func longMultiGetLineIsKept() {
        let keys = (0..<400).map { "key\($0)" }.joined(separator: " ")
        let requests = decodeAll("get \(keys)\r\n", chunk: 256)
        guard case .retrieval(let retrieval) = requests.first else {
            Issue.record("expected a multi-get")
            return
        }
        #expect(retrieval.keys.count == 400)
    }

    @Test func httpRequestLineHangsUp() {
        #expect(decodeAll("GET / HTTP/1.1\r\n") == [.close(reason: .httpRequest)])
    }

    @Test(arguments: [
        ("\r\n", "ERROR"),
        ("get\r\n", "ERROR"),
        ("foo\r\n", "ERROR"),
        ("set a 0 0\r\n", "ERROR"),
        ("set a x 0 1\r\n", "CLIENT_ERROR bad command line format"),
        ("set a -1 0 1\r\n", "CLIENT_ERROR bad command line format"),
        ("set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format"),
        ("incr n x\r\n", "CLIENT_ERROR invalid numeric delta argument"),
        ("incr n -1\r\n", "CLIENT_ERROR invalid numeric delta argument"),
        ("delete a 5\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"),
        ("touch t x\r\n", "CLIENT_ERROR invalid exptime argument"),
        ("gat x t\r\n", "CLIENT_ERROR invalid exptime argument"),
        ("flush_all x\r\n", "CLIENT_ERROR invalid exptime argument"),
        ("verbosity x\r\n", "CLIENT_ERROR bad command line format"),
        ("shutdown\r\n", "ERROR: shutdown not enabled"),
        ("mg\r\n", "ERROR"),
        ("mx\r\n", "ERROR"),
        ("mg a Z\r\n", "CLIENT_ERROR invalid flag"),
        ("mg a v v\r\n", "CLIENT_ERROR duplicate flag"),
        ("mg a T\r\n", "CLIENT_ERROR bad token in command line format"),
        ("mg !!! b v\r\n", "CLIENT_ERROR error decoding key"),
        ("md a x\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        ("ma n Dx\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        ("ms a\r\n", "CLIENT_ERROR bad command line format"),
        ("me\r\n", "CLIENT_ERROR bad command line format"),
    ])
    func malformedInputGetsMemcachedsAnswer(input: String, expected: String) {
        let requests = decodeAll(input)
        #expect(requests.count == 1)
        #expect(requests.first.flatMap(replyText) == expected)
    }

    @Test func noreplySuppressesErrorsOfTheCommand() {
        guard case .reply(let reply) = decodeAll("set a 0 x 1 noreply\r\n").first else {
            Issue.record("expected a reply")
            return
        }
        #expect(reply.suppressed)
    }

    @Test func metaSetErrorsSwallowTheValue() {
        let requests = decodeAll("ms a 2 MX\r\nhi\r\nmn\r\n")
        #expect(requests.count == 2)
        #expect(requests.first.flatMap(replyText) == "CLIENT_ERROR invalid mode for ms M token")
        #expect(requests[1].isNoop)
    }

    @Test func keysOver250BytesAreRefused() {
        let key = String(repeating: "k", count: 251)
        #expect(
            decodeAll("set \(key) 0 0 1\r\nx\r\n").first.flatMap(replyText) == "CLIENT_ERROR bad command line format"
        )
        #expect(decodeAll("mg \(key) v\r\n").first.flatMap(replyText) == "CLIENT_ERROR bad command line format")
    }

    @Test func base64KeysAreDecoded() {
        guard case .meta(let meta) = decodeAll("mg Zm9v b v\r\n").first else {
            Issue.record("expected a meta request")
            return
        }
        #expect(String(buffer: meta.key) == "foo")
        #expect(meta.flags.keyIsBinary && meta.flags.returnValue)
    }

    @Test func base64FollowsMemcachedsDecoder() {
        // memcached skips bytes outside the alphabet and stops after a padded group.
        for (encoded, decoded) in [("a2V5a2V5*", "keykey"), ("a*2V5", "key"), ("YQ==YQ==", "a"), ("Zm9v", "foo")] {
            let bytes = Array(encoded.utf8)
            let result = bytes.withUnsafeBytes { Base64Key.decode($0) }
            #expect(result.map { String(decoding: $0, as: UTF8.self) } == decoded, "\(encoded)")
        }
        for invalid in ["YQ", "!!!", "Y===", ""] {
            #expect(Array(invalid.utf8).withUnsafeBytes { Base64Key.decode($0) } == nil, "\(invalid)")
        }
    }

    @Test func numbersFollowMemcachedsRules() {
        // Flags wider than 32 bits are truncated (memcached stores 4294967296 as 0).
        guard case .storage(let storage) = decodeAll("set f 4294967296 0 1\r\nx\r\n").first else {
            Issue.record("expected storage")
            return
        }
        #expect(storage.flags == 0)
        #expect(decodeAll("set f 99999999999999999999 0 1\r\nx\r\n").first.flatMap(replyText) != nil)
    }

    @Test("lru_crawler metadump and crawl as memcached reads them")
    func lruCrawler() {
        #expect(decodeAll("lru_crawler metadump all\r\n") == [.metadump(classes: .all)])
        #expect(decodeAll("lru_crawler metadump hash\r\n") == [.metadump(classes: .all)])
        #expect(decodeAll("lru_crawler metadump 1,63,\r\n") == [.metadump(classes: .ids([1, 63]))])
        #expect(decodeAll("lru_crawler crawl 2\r\n") == [.crawl(classes: .ids([2]))])
        for (line, answer) in [
            ("lru_crawler metadump 0", "BADCLASS invalid class id"),
            ("lru_crawler metadump 64", "BADCLASS invalid class id"),
            ("lru_crawler metadump 1,x", "BADCLASS invalid class id"),
            ("lru_crawler crawl hash", "BADCLASS invalid class id"),
            ("lru_crawler metadump", "ERROR"),
            ("lru_crawler metadump all x", "ERROR"),
            ("lru_crawler sleep 10", "ERROR"),
            ("lru_crawler", "ERROR"),
        ] {
            let decoded = decodeAll(line + "\r\n")
            #expect(decoded.count == 1 && replyText(decoded[0]) == answer, "\(line)")
        }
    }
}

extension MemcacheRequest {
    var isNoop: Bool {
        if case .meta(let meta) = self { return meta.command == .noop }
        return false
    }
}
