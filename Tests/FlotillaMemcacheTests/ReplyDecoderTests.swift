import FlotillaCore
import NIOCore
import Testing

@testable import FlotillaMemcache

@Suite("Memcache reply decoder")
struct ReplyDecoderTests {
    /// A stream with every kind of reply, the expectation of each, and what each must decode to.
    static let stream: [(ExpectedReply, String, String)] = [
        (.retrieval, "VALUE a 5 3\r\nabc\r\nVALUE bb 0 0\r\n\r\nEND\r\n", "values a/5/-/abc|bb/0/-/"),
        (.retrieval, "VALUE a 4294967295 3 99\r\nabc\r\nEND\r\n", "values a/4294967295/99/abc"),
        (.retrieval, "END\r\n", "values "),
        // Framing follows the length: the data may hold anything, END and \r\n included.
        (.retrieval, "VALUE x 0 7\r\nEND\r\n\r\n\r\nEND\r\n", "values x/0/-/END\r\n\r\n"),
        (.line, "STORED\r\n", "line stored"),
        (.line, "NOT_STORED\r\n", "line notStored"),
        (.line, "EXISTS\r\n", "line exists"),
        (.line, "NOT_FOUND\r\n", "line notFound"),
        (.line, "DELETED\r\n", "line deleted"),
        (.line, "TOUCHED\r\n", "line touched"),
        (.line, "OK\r\n", "line ok"),
        (.line, "0\r\n", "line number(0)"),
        (.line, "18446744073709551615\r\n", "line number(18446744073709551615)"),
        (.version, "VERSION 1.6.18\r\n", "line version"),
        (.line, "VERSION 1.6.18\r\n", "line version"),
        (.meta, "VA 2 t-1 c3 kfoo\r\nhi\r\n", "meta VA [t-1,c3,kfoo] hi"),
        (.meta, "VA 0\r\n\r\n", "meta VA [] "),
        (.meta, "VA 4 Oab\r\n\r\n\r\n\r\n", "meta VA [Oab] \r\n\r\n"),
        (.meta, "HD\r\n", "meta HD [] -"),
        (.meta, "HD c5 Oab kZm9v b\r\n", "meta HD [c5,Oab,kZm9v,b] -"),
        (.meta, "EN\r\n", "meta EN [] -"),
        (.meta, "NF\r\n", "meta NF [] -"),
        (.meta, "NS\r\n", "meta NS [] -"),
        (.meta, "EX\r\n", "meta EX [] -"),
        (.meta, "MN\r\n", "meta MN [] -"),
        (
            .meta, "ME foo exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n",
            "meta ME [foo,exp=-1,la=1,cas=2,fetch=no,cls=1,size=63] -"
        ),
        (
            .stats, "STAT pid 123\r\nSTAT version 1.6.18\r\nSTAT libevent 2.1.12-stable\r\nEND\r\n",
            "stats pid=123|version=1.6.18|libevent=2.1.12-stable"
        ),
        (.stats, "STAT empty \r\nSTAT 1:chunk_size 96\r\nEND\r\n", "stats empty=|1:chunk_size=96"),
        (.stats, "END\r\n", "stats "),
        // Any request may get an error as its whole reply.
        (.retrieval, "CLIENT_ERROR bad command line format\r\n", "failure clientError"),
        (.retrieval, "VALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n", "failure serverError"),
        (.meta, "SERVER_ERROR out of memory storing object\r\n", "failure serverError"),
        (.meta, "CLIENT_ERROR bad data chunk\r\n", "failure clientError"),
        (.stats, "ERROR\r\n", "failure error"),
        (.version, "ERROR\r\n", "failure error"),
        (.line, "ERROR: shutdown not enabled\r\n", "failure error"),
        (.line, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "failure clientError"),
        (.line, "SERVER_ERROR\r\n", "failure serverError"),
    ]

    static var streamBytes: [UInt8] { Array(stream.map(\.1).joined().utf8) }
    static var streamExpectations: [ExpectedReply] { stream.map(\.0) }

    static func summary(_ reply: ShardReply) -> String {
        switch reply {
        case .values(let values):
            let items = values.map { value in
                "\(String(buffer: value.key))/\(value.flags)/\(value.cas.map { "\($0)" } ?? "-")/"
                    + String(buffer: value.data)
            }
            return "values " + items.joined(separator: "|")
        case .value(let value):
            return "value \(String(buffer: value.key))/\(value.flags)/\(value.cas.map { "\($0)" } ?? "-")/"
                + String(buffer: value.data)
        case .line(let line) where line.isFailure:
            return "failure \(line.status)"
        case .line(let line):
            return "line \(line.status)"
        case .meta(let meta):
            let flags = meta.flags.map { String(buffer: $0) }.joined(separator: ",")
            return "meta \(meta.code) [\(flags)] " + (meta.data.map { String(buffer: $0) } ?? "-")
        case .stats(let stats):
            return "stats " + stats.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
        }
    }

    /// The bytes each reply claims as its own: what the proxy would forward.
    static func rawText(_ reply: ShardReply) -> String {
        switch reply {
        case .values(let values): values.map { String(buffer: $0.raw) }.joined() + "END\r\n"
        case .value(let value): String(buffer: value.raw) + "END\r\n"
        case .line(let line): String(buffer: line.raw)
        case .meta(let meta): String(buffer: meta.raw)
        case .stats(let stats): stats.map { "STAT \($0.name) \($0.value)\r\n" }.joined() + "END\r\n"
        }
    }

    /// Feeds `bytes` in chunks of the given sizes (the last chunk takes the rest), decoding after each one.
    ///
    /// Checks on the way that a nil result leaves the buffer untouched.
    static func decode(
        _ bytes: [UInt8],
        expecting expectations: [ExpectedReply],
        chunks: [Int],
        maximumValueBytes: Int = 1 << 20
    ) throws(ReplyDecodingError) -> [ShardReply] {
        var decoder = MemcacheReplyDecoder(maximumValueBytes: maximumValueBytes)
        var buffer = ByteBuffer()
        var replies: [ShardReply] = []
        var offset = 0
        var chunkIndex = 0
        while offset < bytes.count || chunkIndex == 0 {
            let size = chunkIndex < chunks.count ? chunks[chunkIndex] : bytes.count - offset
            let end = min(bytes.count, offset + size)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            chunkIndex += 1
            while replies.count < expectations.count {
                let before = buffer.readerIndex
                guard let reply = try decoder.decode(&buffer, expecting: expectations[replies.count]) else {
                    #expect(buffer.readerIndex == before, "a partial reply was consumed")
                    break
                }
                replies.append(reply)
            }
        }
        #expect(buffer.readableBytes == 0)
        return replies
    }

    @Test func decodesEveryKindOfReply() throws {
        let replies = try Self.decode(Self.streamBytes, expecting: Self.streamExpectations, chunks: [])
        #expect(replies.map(Self.summary) == Self.stream.map(\.2))
        // The raw slices are the shard's own bytes (values and stats less their END line); an error ends its reply.
        for (reply, entry) in zip(replies, Self.stream) {
            if reply.isFailure {
                #expect(entry.1.hasSuffix(Self.rawText(reply)))
            } else {
                #expect(Self.rawText(reply) == entry.1)
            }
        }
    }

    @Test func survivesASplitAtEveryByte() throws {
        let bytes = Self.streamBytes
        let expected = Self.stream.map(\.2)
        for split in 0...bytes.count {
            let replies = try Self.decode(bytes, expecting: Self.streamExpectations, chunks: [split])
            #expect(replies.map(Self.summary) == expected, "split at \(split)")
        }
    }

    @Test func survivesOneByteAtATime() throws {
        let bytes = Self.streamBytes
        let chunks = [Int](repeating: 1, count: bytes.count)
        let replies = try Self.decode(bytes, expecting: Self.streamExpectations, chunks: chunks)
        #expect(replies.map(Self.summary) == Self.stream.map(\.2))
    }

    @Test(arguments: [1, 2, 3, 0xF107_111A] as [UInt64])
    func survivesRandomChunks(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let bytes = Self.streamBytes
        for _ in 0..<50 {
            let chunks = (0..<bytes.count).map { _ in Int(random.next() % 40) + 1 }
            let replies = try Self.decode(bytes, expecting: Self.streamExpectations, chunks: chunks)
            #expect(replies.map(Self.summary) == Self.stream.map(\.2), "seed \(seed)")
        }
    }

    @Test func partialRepliesAreNotConsumed() throws {
        var decoder = MemcacheReplyDecoder()
        for partial in ["", "VALUE a 0 3\r\nab", "VALUE a 0 3\r\nabc\r", "VALUE a 0 3\r\nabc\r\nEN", "VALUE a 0 3\r"] {
            var buffer = ByteBuffer(string: partial)
            #expect(try decoder.decode(&buffer, expecting: .retrieval) == nil)
            #expect(buffer.readerIndex == 0 && buffer.readableBytes == partial.utf8.count)
        }
        for partial in ["VA 2 t\r\nh", "VA 2\r\nhi\r", "HD"] {
            var buffer = ByteBuffer(string: partial)
            #expect(try decoder.decode(&buffer, expecting: .meta) == nil)
            #expect(buffer.readerIndex == 0)
        }
        var buffer = ByteBuffer(string: "STAT a 1\r\nSTAT b 2\r\n")
        #expect(try decoder.decode(&buffer, expecting: .stats) == nil)
        #expect(buffer.readerIndex == 0)
    }

    @Test func aFullLineOfMaximumLengthStillWaitsForItsNewline() throws {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: "SERVER_ERROR " + String(repeating: "x", count: 8192 - 13))
        #expect(try decoder.decode(&buffer, expecting: .line) == nil)
        buffer.writeString("\r\n")
        let reply = try decoder.decode(&buffer, expecting: .line)
        #expect(reply?.isFailure == true)
    }

    @Test func progressSurvivesTheCallerCompactingItsBuffer() throws {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: "STORED\r\nVALUE a 0 1\r\nx\r\nVALUE b 0 1\r\n")
        #expect(try decoder.decode(&buffer, expecting: .line).map(Self.summary) == "line stored")
        #expect(try decoder.decode(&buffer, expecting: .retrieval) == nil)
        buffer.discardReadBytes()
        buffer.writeString("y\r\nEND\r\n")
        let reply = try decoder.decode(&buffer, expecting: .retrieval)
        #expect(reply.map(Self.summary) == "values a/0/-/x|b/0/-/y")
    }

    @Test func aLongMultiGetFedInSmallReadsDecodesOnce() throws {
        var text = ""
        for index in 0..<2_000 { text += "VALUE key\(index) \(index) 5\r\nvalue\r\n" }
        text += "END\r\n"
        let bytes = Array(text.utf8)
        let chunks = [Int](repeating: 7, count: bytes.count / 7 + 1)
        let replies = try Self.decode(bytes, expecting: [.retrieval], chunks: chunks)
        guard case .values(let values) = replies.first else {
            Issue.record("expected values")
            return
        }
        #expect(values.count == 2_000)
        #expect(values.last.map { String(buffer: $0.key) } == "key1999" && values.last?.flags == 1999)
        #expect(values.map { String(buffer: $0.raw) }.joined() + "END\r\n" == text)
    }

    @Test(arguments: [
        (ExpectedReply.line, "FOO\r\n", ReplyDecodingErrorCode.unexpectedLine),
        (.line, "END\r\n", .unexpectedLine),
        (.line, "HD\r\n", .unexpectedLine),
        (.line, "STORED \r\n", .unexpectedLine),
        (.line, "99999999999999999999\r\n", .unexpectedLine),
        (.line, "12a\r\n", .unexpectedLine),
        (.line, "STORED\n", .malformedLine),
        (.line, "\n", .malformedLine),
        (.version, "STORED\r\n", .unexpectedLine),
        (.meta, "STORED\r\n", .unexpectedLine),
        (.meta, "XX\r\n", .unexpectedLine),
        (.meta, "HDX\r\n", .unexpectedLine),
        (.meta, "VA\r\n", .malformedLine),
        (.meta, "VA x\r\n", .malformedLine),
        (.meta, "VA -1\r\n", .malformedLine),
        (.meta, "VA 1\r\nxyz\r\n", .badDataTerminator),
        (.meta, "VA 2000000\r\n", .valueTooLarge),
        (.retrieval, "STORED\r\n", .unexpectedLine),
        (.retrieval, "VALUE a 0 1\r\nx\r\nSTORED\r\n", .unexpectedLine),
        (.retrieval, "VALUE a x 1\r\n", .malformedLine),
        (.retrieval, "VALUE a 0\r\n", .malformedLine),
        (.retrieval, "VALUE a 0 1 2 3\r\n", .malformedLine),
        (.retrieval, "VALUE a 4294967296 1\r\n", .malformedLine),
        (.retrieval, "VALUE  0 1\r\n", .malformedLine),
        (.retrieval, "VALUE a 0 1 x\r\n", .malformedLine),
        (.retrieval, "VALUE a 0 1\r\nxyz\r\n", .badDataTerminator),
        (.retrieval, "VALUE a 0 2000000\r\n", .valueTooLarge),
        (.stats, "STAT a 1\r\nVALUE a 0 1\r\nx\r\n", .unexpectedLine),
        (.stats, "STAT \r\n", .malformedLine),
        (.stats, "STORED\r\n", .unexpectedLine),
    ])
    func malformedRepliesThrow(expected: ExpectedReply, text: String, code: ReplyDecodingErrorCode) {
        // Whole, and one byte at a time: the error does not depend on how the bytes arrive.
        let bytes = Array(text.utf8)
        for chunks in [[], [Int](repeating: 1, count: bytes.count)] {
            do throws(ReplyDecodingError) {
                let replies = try Self.decode(bytes, expecting: [expected], chunks: chunks)
                Issue.record("expected \(code), decoded \(replies.map(Self.summary))")
            } catch {
                #expect(error.code == code, "\(error)")
            }
        }
    }

    @Test func aLineWithoutNewlineIsCutOff() throws {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: String(repeating: "x", count: 8193))
        #expect(try decoder.decode(&buffer, expecting: .line) == nil)
        buffer.writeString("x")
        #expect(throws: ReplyDecodingError.self) { try decoder.decode(&buffer, expecting: .line) }
        var values = ByteBuffer(string: "VALUE a 0 1\r\nx\r\n" + String(repeating: "y", count: 9000))
        do throws(ReplyDecodingError) {
            _ = try decoder.decode(&values, expecting: .retrieval)
            Issue.record("expected line-too-long")
        } catch {
            #expect(error.code == .lineTooLong)
            #expect(error.shortDescription == "line-too-long")
        }
    }

    @Test func errorsNameTheLineByItsFirstWordOnly() {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: "FOO\u{1} secret-key secret-value\r\n")
        do throws(ReplyDecodingError) {
            _ = try decoder.decode(&buffer, expecting: .retrieval)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("FOO\\x1"))
            #expect(!error.description.contains("secret"))
            #expect(error.description.contains("VALUE…END"))
        }
    }

    @Test func rawSlicesShareTheInputStorage() throws {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: "VALUE k 1 2 3\r\nab\r\nEND\r\n")
        guard case .values(let values) = try decoder.decode(&buffer, expecting: .retrieval) else {
            Issue.record("expected values")
            return
        }
        let value = try #require(values.first)
        #expect(String(buffer: value.raw) == "VALUE k 1 2 3\r\nab\r\n")
        #expect(value.cas == 3 && value.flags == 1)
        // Slices are views of the input's storage, not copies.
        let storage = buffer.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let raw = value.raw.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let data = value.data.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(raw == storage && data == storage + 15)
    }

    // MARK: One-key retrieval

    /// A stream of one-key retrieval replies, pipelined with other kinds, the expectation of each and what each
    /// must decode to.
    static let oneKeyStream: [(ExpectedReply, String, String)] = [
        (.retrievalOfOne, "VALUE foo 5 3\r\nabc\r\nEND\r\n", "value foo/5/-/abc"),
        (.line, "STORED\r\n", "line stored"),
        (.retrievalOfOne, "END\r\n", "values "),
        (
            .retrievalOfOne, "VALUE k 4294967295 2 18446744073709551615\r\nhi\r\nEND\r\n",
            "value k/4294967295/18446744073709551615/hi"
        ),
        (.retrieval, "VALUE a 1 1\r\nx\r\nVALUE b 2 1\r\ny\r\nEND\r\n", "values a/1/-/x|b/2/-/y"),
        (.retrievalOfOne, "VALUE e 0 0\r\n\r\nEND\r\n", "value e/0/-/"),
        // Framing follows the length: END and \r\n inside the data are data.
        (.retrievalOfOne, "VALUE x 0 9\r\n\r\nEND\r\nab\r\nEND\r\n", "value x/0/-/\r\nEND\r\nab"),
        (.retrievalOfOne, "VALUE y 0 5 7\r\nEND\r\n\r\nEND\r\n", "value y/0/7/END\r\n"),
        (.retrievalOfOne, "SERVER_ERROR out of memory\r\n", "failure serverError"),
        (.meta, "HD\r\n", "meta HD [] -"),
        // More than one block: the general list.
        (.retrievalOfOne, "VALUE a 0 1 1\r\nx\r\nVALUE a 0 1 2\r\ny\r\nEND\r\n", "values a/0/1/x|a/0/2/y"),
        (.retrievalOfOne, "CLIENT_ERROR bad command line format\r\n", "failure clientError"),
        // A hit and then an error line: the error is the reply.
        (
            .retrievalOfOne, "VALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n",
            "failure serverError"
        ),
        (.retrievalOfOne, "ERROR\r\n", "failure error"),
        (.retrievalOfOne, "VALUE last 9 4 3\r\nlast\r\nEND\r\n", "value last/9/3/last"),
    ]

    static var oneKeyBytes: [UInt8] { Array(oneKeyStream.map(\.1).joined().utf8) }
    static var oneKeyExpectations: [ExpectedReply] { oneKeyStream.map(\.0) }

    @Test(arguments: [
        ("VALUE foo 5 3\r\nabc\r\nEND\r\n", "foo", 5 as UInt32, nil as UInt64?, "abc", "VALUE foo 5 3\r\nabc\r\n"),
        (
            "VALUE foo 4294967295 3 18446744073709551615\r\nabc\r\nEND\r\n", "foo", 4_294_967_295,
            18_446_744_073_709_551_615,
            "abc", "VALUE foo 4294967295 3 18446744073709551615\r\nabc\r\n"
        ),
        ("VALUE k 0 0 12\r\n\r\nEND\r\n", "k", 0, 12, "", "VALUE k 0 0 12\r\n\r\n"),
    ])
    func oneKeyHitIsOneValue(
        text: String,
        key: String,
        flags: UInt32,
        cas: UInt64?,
        data: String,
        raw: String
    ) throws {
        var decoder = MemcacheReplyDecoder()
        // Bytes before the reply (already read) and after it (the next reply) must not leak into it.
        var buffer = ByteBuffer(string: "STORED\r\n" + text + "END\r\n")
        buffer.moveReaderIndex(forwardBy: 8)
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        guard case .value(let value) = reply else {
            Issue.record("expected .value, got \(reply.map(Self.summary) ?? "nil")")
            return
        }
        #expect(String(buffer: value.key) == key)
        #expect(value.flags == flags)
        #expect(value.cas == cas)
        #expect(String(buffer: value.data) == data)
        #expect(String(buffer: value.raw) == raw)
        // The reader index moved past the END line, and only past it.
        #expect(buffer.readerIndex == 8 + text.utf8.count)
        #expect(String(buffer: buffer) == "END\r\n")
        // The slices are views of the input.
        let storage = buffer.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let rawStart = value.raw.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(rawStart == storage + 8)
    }

    @Test func oneKeyMissIsAnEmptyList() throws {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: "END\r\nEND\r\n")
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        guard case .values(let values) = reply else {
            Issue.record("expected .values, got \(reply.map(Self.summary) ?? "nil")")
            return
        }
        #expect(values.isEmpty)
        #expect(buffer.readerIndex == 5)
        #expect(buffer.readableBytes == 5)
    }

    @Test(arguments: [
        ("SERVER_ERROR out of memory\r\n", LineReply.Status.serverError),
        ("SERVER_ERROR\r\n", .serverError),
        ("CLIENT_ERROR bad command line format\r\n", .clientError),
        ("CLIENT_ERROR\r\n", .clientError),
        ("ERROR\r\n", .error),
    ])
    func oneKeyErrorLineIsAFailedLine(text: String, status: LineReply.Status) throws {
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: text + "END\r\n")
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        guard case .line(let line) = reply else {
            Issue.record("expected a failed .line, got \(reply.map(Self.summary) ?? "nil")")
            return
        }
        #expect(line.isFailure)
        #expect(line.status == status)
        #expect(String(buffer: line.raw) == text)
        #expect(buffer.readerIndex == text.utf8.count)
    }

    @Test func oneKeyHitThenAnErrorIsTheError() throws {
        var decoder = MemcacheReplyDecoder()
        let text = "VALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n"
        var buffer = ByteBuffer(string: text)
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        guard case .line(let line) = reply else {
            Issue.record("expected a failed .line, got \(reply.map(Self.summary) ?? "nil")")
            return
        }
        #expect(line.status == .serverError)
        #expect(String(buffer: line.raw) == "SERVER_ERROR out of memory writing get response\r\n")
        #expect(buffer.readableBytes == 0)
    }

    @Test func twoBlocksForOneKeyFallBackToTheList() throws {
        var decoder = MemcacheReplyDecoder()
        let text = "VALUE a 1 3 10\r\nabc\r\nVALUE b 2 2 11\r\nde\r\nEND\r\n"
        var buffer = ByteBuffer(string: text + "STORED\r\n")
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        guard case .values(let values) = reply else {
            Issue.record("expected .values, got \(reply.map(Self.summary) ?? "nil")")
            return
        }
        #expect(values.count == 2)
        #expect(values.map { String(buffer: $0.key) } == ["a", "b"])
        #expect(values.map(\.flags) == [1, 2])
        #expect(values.map(\.cas) == [10, 11])
        #expect(values.map { String(buffer: $0.data) } == ["abc", "de"])
        #expect(values.map { String(buffer: $0.raw) } == ["VALUE a 1 3 10\r\nabc\r\n", "VALUE b 2 2 11\r\nde\r\n"])
        #expect(buffer.readerIndex == text.utf8.count)
        #expect(try decoder.decode(&buffer, expecting: .line).map(Self.summary) == "line stored")
    }

    @Test(arguments: [
        "VALUE foo 5 3\r\nabc\r\nEND\r\n",
        "VALUE foo 5 3 77\r\nabc\r\nEND\r\n",
        "END\r\n",
        "VALUE x 0 9\r\n\r\nEND\r\nab\r\nEND\r\n",
        "VALUE a 0 1\r\nx\r\nVALUE b 0 2\r\nyz\r\nVALUE c 0 0\r\n\r\nEND\r\n",
        "SERVER_ERROR out of memory\r\n",
        "VALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n",
    ])
    func oneKeyReplyFedOneByteAtATime(text: String) throws {
        let bytes = Array(text.utf8)
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer()
        for (index, byte) in bytes.enumerated() {
            buffer.writeInteger(byte)
            let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
            if index < bytes.count - 1 {
                #expect(reply == nil, "decoded \(reply.map(Self.summary) ?? "") after \(index + 1) bytes")
                #expect(buffer.readerIndex == 0 && buffer.readableBytes == index + 1, "consumed part of the reply")
            } else {
                // The same reply as when it comes in one piece.
                var whole = ByteBuffer(string: text)
                var reference = MemcacheReplyDecoder()
                let expected = try reference.decode(&whole, expecting: .retrievalOfOne)
                #expect(reply.map(Self.summary) != nil)
                #expect(reply.map(Self.summary) == expected.map(Self.summary))
                #expect(reply.map(Self.rawText) == expected.map(Self.rawText))
                #expect(buffer.readableBytes == 0)
            }
        }
    }

    @Test func oneKeyValueHoldingEndIsFramedByItsLength() throws {
        var decoder = MemcacheReplyDecoder()
        let data = "\r\nEND\r\nVALUE z 0 1\r\nEND\r\n"
        let text = "VALUE k 3 \(data.utf8.count)\r\n\(data)\r\nEND\r\n"
        var buffer = ByteBuffer(string: text)
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        guard case .value(let value) = reply else {
            Issue.record("expected .value, got \(reply.map(Self.summary) ?? "nil")")
            return
        }
        #expect(String(buffer: value.key) == "k")
        #expect(value.flags == 3)
        #expect(String(buffer: value.data) == data)
        #expect(String(buffer: value.raw) == "VALUE k 3 \(data.utf8.count)\r\n\(data)\r\n")
        #expect(buffer.readableBytes == 0)
        // Cut short inside the data, right after its END: still incomplete.
        for length in ["VALUE k 3 \(data.utf8.count)\r\n\r\nEND\r\n".utf8.count, text.utf8.count - 1] {
            var partial = ByteBuffer(bytes: Array(text.utf8.prefix(length)))
            #expect(try decoder.decode(&partial, expecting: .retrievalOfOne) == nil, "\(length) bytes")
            #expect(partial.readerIndex == 0)
        }
    }

    @Test(arguments: [
        ("VALUE a 0 1\r\nxyz\r\nEND\r\n", ReplyDecodingErrorCode.badDataTerminator),
        ("VALUE a 0 3\r\nabcEND\r\n", .badDataTerminator),
        ("VALUE a 0 0\r\nEND\r\n", .badDataTerminator),
        ("STORED\r\n", .unexpectedLine),
        ("HD\r\n", .unexpectedLine),
        ("VALUE a 0 1\r\nx\r\nSTORED\r\n", .unexpectedLine),
        ("VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nSTORED\r\n", .unexpectedLine),
        ("VALUE a x 1\r\n", .malformedLine),
        ("VALUE a 0\r\n", .malformedLine),
        ("VALUE  0 1\r\n", .malformedLine),
        ("VALUE a 0 1 2 3\r\n", .malformedLine),
        ("VALUE a 0 1\r\nx\r\nEND\n", .malformedLine),
        ("VALUE a 0 2000000\r\n", .valueTooLarge),
    ])
    func malformedOneKeyRepliesThrow(text: String, code: ReplyDecodingErrorCode) {
        let bytes = Array(text.utf8)
        for chunks in [[], [Int](repeating: 1, count: bytes.count)] {
            do throws(ReplyDecodingError) {
                let replies = try Self.decode(bytes, expecting: [.retrievalOfOne], chunks: chunks)
                Issue.record("expected \(code), decoded \(replies.map(Self.summary))")
            } catch {
                #expect(error.code == code, "\(error)")
            }
        }
    }

    @Test func pipelinedOneKeyRepliesDecodeInSequence() throws {
        let replies = try Self.decode(Self.oneKeyBytes, expecting: Self.oneKeyExpectations, chunks: [])
        #expect(replies.map(Self.summary) == Self.oneKeyStream.map(\.2))
        for (reply, entry) in zip(replies, Self.oneKeyStream) {
            if reply.isFailure {
                #expect(entry.1.hasSuffix(Self.rawText(reply)))
            } else {
                #expect(Self.rawText(reply) == entry.1)
            }
        }
        // Each reply on its own is exactly its bytes: nothing of the next one is consumed.
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(bytes: Self.oneKeyBytes)
        for (expected, text, _) in Self.oneKeyStream {
            let before = buffer.readerIndex
            _ = try #require(try decoder.decode(&buffer, expecting: expected))
            #expect(buffer.readerIndex - before == text.utf8.count, "\(text.debugDescription)")
        }
        #expect(buffer.readableBytes == 0)
    }

    @Test func pipelinedOneKeyRepliesSurviveEverySplit() throws {
        let bytes = Self.oneKeyBytes
        let expected = Self.oneKeyStream.map(\.2)
        for split in 0...bytes.count {
            let replies = try Self.decode(bytes, expecting: Self.oneKeyExpectations, chunks: [split])
            #expect(replies.map(Self.summary) == expected, "split at \(split)")
        }
        let ones = [Int](repeating: 1, count: bytes.count)
        #expect(try Self.decode(bytes, expecting: Self.oneKeyExpectations, chunks: ones).map(Self.summary) == expected)
        var random = SplitMix64(seed: 0x0E_0F_0E)
        for _ in 0..<50 {
            let chunks = (0..<bytes.count).map { _ in Int(random.next() % 40) + 1 }
            let replies = try Self.decode(bytes, expecting: Self.oneKeyExpectations, chunks: chunks)
            #expect(replies.map(Self.summary) == expected, "chunks \(chunks)")
        }
    }

    @Test func oneKeyProgressSurvivesTheCallerCompactingItsBuffer() throws {
        // Two blocks fall back to the list, which remembers its progress: a compacted buffer starts over.
        var decoder = MemcacheReplyDecoder()
        var buffer = ByteBuffer(string: "STORED\r\nVALUE a 0 1\r\nx\r\nVALUE b 0 1\r\n")
        #expect(try decoder.decode(&buffer, expecting: .line).map(Self.summary) == "line stored")
        #expect(try decoder.decode(&buffer, expecting: .retrievalOfOne) == nil)
        buffer.discardReadBytes()
        buffer.writeString("y\r\nEND\r\n")
        let reply = try decoder.decode(&buffer, expecting: .retrievalOfOne)
        #expect(reply.map(Self.summary) == "values a/0/-/x|b/0/-/y")
        #expect(buffer.readableBytes == 0)
    }
}
