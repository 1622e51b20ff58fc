import NIOCore
import Testing

@testable import FlotillaBench

@Suite("memcache reply parser")
struct MemcacheReplyParserTests {
    /// Parses `text` fed in pieces of `chunk` bytes, as reads would deliver it.
    static func replies(_ text: String, chunk: Int) -> [MemcacheReply] {
        var parser = MemcacheReplyParser()
        var pending = ByteBuffer()
        var replies: [MemcacheReply] = []
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            pending.writeBytes(bytes[offset..<end])
            offset = end
            while let reply = parser.next(&pending) { replies.append(reply) }
            pending.discardReadBytes()
        }
        return replies
    }

    static let conversation =
        "VALUE bench:1 0 5\r\nhello\r\nVALUE bench:2 7 10 99\r\nEND\r\nEND\r\n\r\nEND\r\nSTORED\r\nNOT_STORED\r\n"
        + "EXISTS\r\nNOT_FOUND\r\nERROR\r\nCLIENT_ERROR bad data chunk\r\nSERVER_ERROR out of memory\r\n"

    static let expected: [MemcacheReply] = [
        .value, .value, .end, .stored, .failure(kind: "not_stored"), .failure(kind: "not_stored"),
        .failure(kind: "not_stored"), .failure(kind: "error"), .failure(kind: "client_error"),
        .failure(kind: "server_error"),
    ]

    @Test("every reply, whatever the read boundaries", arguments: [1, 2, 3, 7, 19, 1000])
    func everyReply(chunk: Int) {
        // The second value's 10 data bytes are "END\r\nEND\r\n": data, not replies.
        #expect(Self.replies(Self.conversation, chunk: chunk) == Self.expected)
    }

    @Test("a large value is skipped as it streams, never buffered whole")
    func largeValueStreams() {
        var parser = MemcacheReplyParser()
        var buffer = ByteBuffer(string: "VALUE k 0 1000000\r\n")
        #expect(parser.next(&buffer) == .value)
        var seen = 0
        while seen < 1_000_000 {
            var piece = ByteBuffer(repeating: UInt8(ascii: "x"), count: min(65_536, 1_000_000 - seen))
            seen += piece.readableBytes
            #expect(parser.next(&piece) == nil)
            #expect(piece.readableBytes == 0)
        }
        var tail = ByteBuffer(string: "\r\nEND\r\n")
        #expect(parser.next(&tail) == .end)
    }

    @Test(
        "what is not memcached's protocol is malformed",
        arguments: [
            "HTTP/1.1 200 OK\r\n", "VALUE k 0\r\n", "VALUE k 0 x\r\n", "VALUE k\r\n", "STORED!\r\n", "\r\n",
            "ENDING\r\n",
        ]
    )
    func malformed(line: String) {
        var parser = MemcacheReplyParser()
        var buffer = ByteBuffer(string: line)
        #expect(parser.next(&buffer) == .malformed)
    }

    @Test("an endless line is malformed once it passes the limit, not buffered forever")
    func endlessLine() {
        var parser = MemcacheReplyParser()
        var buffer = ByteBuffer(repeating: UInt8(ascii: "V"), count: MemcacheReplyParser.maximumLineLength)
        #expect(parser.next(&buffer) == nil)
        buffer.writeString("VV")
        #expect(parser.next(&buffer) == .malformed)
    }

    @Test("keys are the prefix and the zero-padded number, at the requested width")
    func keys() {
        var plan = BenchPlan(target: try! BenchTarget(parsing: "memcache://127.0.0.1:1"))
        plan.keySize = 12
        var formatter = KeyFormatter(keySize: 12)
        var buffer = ByteBuffer()
        for index in [0, 7, 123_456] {
            formatter.write(index, into: &buffer)
            #expect(plan.key(index).utf8.count == 12)
        }
        #expect(buffer.readString(length: buffer.readableBytes) == "bench:000000bench:000007bench:123456")
        #expect(plan.key(42) == "bench:000042")
        #expect(BenchPlan.minimumKeySize(keys: 1_000_000) == 12)
        #expect(BenchPlan.minimumKeySize(keys: 1) == 7)
    }
}
