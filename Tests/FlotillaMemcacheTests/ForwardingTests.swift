import NIOCore
import Testing

@testable import FlotillaMemcache

@Suite("Memcache forwarding encoder")
struct ForwardingTests {
    /// Decodes one client request and writes it as the proxy forwards it.
    static func forwarded(_ clientText: String) -> String? {
        var decoder = MemcacheRequestDecoder()
        var input = ByteBuffer(string: clientText)
        guard let request = decoder.decode(buffer: &input), input.readableBytes == 0 else { return nil }
        var output = ByteBuffer()
        switch request {
        case .retrieval(let retrieval):
            MemcacheForwarding.writeRetrieval(
                operation: retrieval.operation,
                exptime: retrieval.exptime,
                keys: retrieval.keys,
                into: &output
            )
        case .storage(let storage):
            MemcacheForwarding.writeStorage(storage, into: &output)
        case .delete(let key, _):
            MemcacheForwarding.writeDelete(key: key, into: &output)
        case .arithmetic(let arithmetic):
            MemcacheForwarding.writeArithmetic(arithmetic, into: &output)
        case .touch(let key, let exptime, _):
            MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &output)
        case .flushAll(let delay, _):
            MemcacheForwarding.writeFlushAll(delay: delay, into: &output)
        case .version:
            MemcacheForwarding.writeVersion(into: &output)
        case .stats(let arguments):
            MemcacheForwarding.writeStats(arguments: arguments, into: &output)
        case .meta(let meta):
            MemcacheForwarding.writeMeta(meta, into: &output)
        default:
            return nil
        }
        return String(buffer: output)
    }

    @Test(arguments: [
        // Retrieval.
        ("get a\r\n", "get a\r\n"),
        ("get a  bb ccc\r\n", "get a bb ccc\r\n"),
        ("gets a b\r\n", "gets a b\r\n"),
        ("gat 100 a b\r\n", "gat 100 a b\r\n"),
        ("gats -1 a\r\n", "gats -1 a\r\n"),
        // Storage: noreply is the proxy's business.
        ("set k 5 100 2\r\nhi\r\n", "set k 5 100 2\r\nhi\r\n"),
        ("set k 5 100 2 noreply\r\nhi\r\n", "set k 5 100 2\r\nhi\r\n"),
        ("add k 0 0 0\r\n\r\n", "add k 0 0 0\r\n\r\n"),
        ("replace k 4294967295 -1 3\r\na\rc\r\n", "replace k 4294967295 -1 3\r\na\rc\r\n"),
        ("append k 0 0 1 noreply\r\nx\r\n", "append k 0 0 1\r\nx\r\n"),
        ("prepend k 0 0 1\r\nx\r\n", "prepend k 0 0 1\r\nx\r\n"),
        ("cas k 1 2 2 77 noreply\r\nhi\r\n", "cas k 1 2 2 77\r\nhi\r\n"),
        ("cas k 0 0 1 18446744073709551615\r\nx\r\n", "cas k 0 0 1 18446744073709551615\r\nx\r\n"),
        // The other text commands.
        ("delete k\r\n", "delete k\r\n"),
        ("delete k noreply\r\n", "delete k\r\n"),
        ("delete k 0\r\n", "delete k\r\n"),
        ("incr n 5 noreply\r\n", "incr n 5\r\n"),
        ("decr n 18446744073709551615\r\n", "decr n 18446744073709551615\r\n"),
        ("touch k 30 noreply\r\n", "touch k 30\r\n"),
        ("touch k -1\r\n", "touch k -1\r\n"),
        ("flush_all\r\n", "flush_all\r\n"),
        ("flush_all noreply\r\n", "flush_all\r\n"),
        ("flush_all 10 noreply\r\n", "flush_all 10\r\n"),
        ("version\r\n", "version\r\n"),
        ("stats\r\n", "stats\r\n"),
        ("stats slabs\r\n", "stats slabs\r\n"),
        // Meta: flags kept in order, q removed, binary keys encoded again.
        ("mg foo\r\n", "mg foo\r\n"),
        ("mg foo q\r\n", "mg foo\r\n"),
        ("mg foo v k O123 q t c f s\r\n", "mg foo v k O123 t c f s\r\n"),
        ("mg foo  v   q\r\n", "mg foo v\r\n"),
        ("mg Zm9v b v q\r\n", "mg Zm9v b v\r\n"),
        ("mg YQ== v b\r\n", "mg YQ== v b\r\n"),
        ("mg AAEC/w== b k\r\n", "mg AAEC/w== b k\r\n"),
        ("ms foo 2\r\nhi\r\n", "ms foo 2\r\nhi\r\n"),
        ("ms foo 2 T30 F5 q I O9\r\nhi\r\n", "ms foo 2 T30 F5 I O9\r\nhi\r\n"),
        ("ms foo 0 MA q\r\n\r\n", "ms foo 0 MA\r\n\r\n"),
        ("ms AAEC/w== 1 b q\r\nx\r\n", "ms AAEC/w== 1 b\r\nx\r\n"),
        ("md foo q I T30\r\n", "md foo I T30\r\n"),
        ("md Zm9v b q\r\n", "md Zm9v b\r\n"),
        ("ma n q D5 N0 J10 MI v\r\n", "ma n D5 N0 J10 MI v\r\n"),
        ("mn\r\n", "mn\r\n"),
        ("me foo\r\n", "me foo\r\n"),
        ("me Zm9v b\r\n", "me Zm9v b\r\n"),
    ])
    func forwardsWhatTheClientSent(client: String, shard: String) {
        #expect(Self.forwarded(client) == shard)
    }

    @Test func binaryKeysAreEncodedAsMemcachedDoes() {
        // memcached's decoder skips bytes outside the alphabet; the key is the same once encoded again.
        #expect(Self.forwarded("mg a*2V5 b v\r\n") == "mg a2V5 b v\r\n")
        // Every padding length, and every byte value in the key.
        for count in 1...6 {
            let key = ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: 250 + $0 * 41) })
            var flags = MetaFlags()
            flags.keyIsBinary = true
            let request = MetaRequest(
                command: .delete,
                key: key,
                flags: flags,
                tokens: [MetaToken(flag: UInt8(ascii: "b"), token: ByteBuffer(string: "b"))]
            )
            var output = ByteBuffer()
            MemcacheForwarding.writeMeta(request, into: &output)
            let line = String(buffer: output)
            let encoded = String(line.dropFirst(3).prefix { $0 != " " })
            let reference = Array(encoded.utf8).withUnsafeBytes { Base64Key.decode($0) }
            #expect(reference == Array(key.readableBytesView), "\(line)")
            #expect(encoded.count % 4 == 0)
        }
    }

    @Test func quietIsReportedSoTheProxyCanApplyIt() throws {
        var decoder = MemcacheRequestDecoder()
        for (text, quiet) in [("mg a v q\r\n", true), ("mg a v\r\n", false), ("md a q\r\n", true), ("mn\r\n", false)] {
            var input = ByteBuffer(string: text)
            guard case .meta(let meta) = decoder.decode(buffer: &input) else {
                Issue.record("expected a meta request for \(text)")
                continue
            }
            #expect(MemcacheForwarding.metaRequestWasQuiet(meta) == quiet, "\(text)")
        }
    }

    @Test func retrievalTakesAnySequenceOfKeys() {
        var output = ByteBuffer()
        let keys = ["a", "b"].lazy.map { ByteBuffer(string: $0) }
        MemcacheForwarding.writeRetrieval(operation: .gats, exptime: 0, keys: keys, into: &output)
        #expect(String(buffer: output) == "gats 0 a b\r\n")
    }

    // MARK: One-key retrieval and storage

    /// A buffer as the proxy's outbound one looks: bytes already written, some of them already sent (read).
    static func prefilledBuffer() -> ByteBuffer {
        var buffer = ByteBuffer(string: "sent;get other\r\n")
        buffer.moveReaderIndex(forwardBy: 5)
        return buffer
    }

    /// A key that is a slice of a larger buffer, as decoded keys are.
    static func slicedKey(_ key: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer(string: "get ")
        buffer.writeBytes(key)
        buffer.writeString(" next\r\n")
        return buffer.getSlice(at: 4, length: key.count)!
    }

    @Test(arguments: [
        (MemcacheOperation.get, 0 as Int32, "get k\r\n"),
        (.get, 55, "get k\r\n"),
        (.gets, 0, "gets k\r\n"),
        (.gets, -1, "gets k\r\n"),
        (.gat, 100, "gat 100 k\r\n"),
        (.gat, 0, "gat 0 k\r\n"),
        (.gats, -1, "gats -1 k\r\n"),
        (.gats, Int32.max, "gats 2147483647 k\r\n"),
    ])
    func oneKeyRetrieval(operation: MemcacheOperation, exptime: Int32, expected: String) {
        let key = ByteBuffer(string: "k")
        // Into an empty buffer, one without capacity, and one that holds bytes already.
        var empty = ByteBuffer()
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: exptime, key: key, into: &empty)
        #expect(String(buffer: empty) == expected)
        var none = ByteBufferAllocator().buffer(capacity: 0)
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: exptime, key: key, into: &none)
        #expect(String(buffer: none) == expected)
        var filled = Self.prefilledBuffer()
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: exptime, key: key, into: &filled)
        #expect(String(buffer: filled) == "get other\r\n" + expected)
        #expect(filled.readerIndex == 5)
        // Twice in a row: the second request follows the first.
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: exptime, key: key, into: &empty)
        #expect(String(buffer: empty) == expected + expected)
        #expect(String(buffer: key) == "k")
    }

    @Test(arguments: [MemcacheOperation.get, .gets, .gat, .gats])
    func oneKeyRetrievalMatchesTheListForm(operation: MemcacheOperation) {
        // The longest key memcached accepts, every byte but space and control bytes, cut out of a larger buffer.
        let keyBytes = (0..<250).map { UInt8(0x21 + $0 % 94) }
        #expect(keyBytes.count == 250)
        let key = Self.slicedKey(keyBytes)
        let command = operation == .get || operation == .gets ? operation.name : "\(operation.name) 7"
        let expected = Array("\(command) ".utf8) + keyBytes + Array("\r\n".utf8)
        var list = Self.prefilledBuffer()
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: 7, keys: [key], into: &list)
        for var buffer in [ByteBuffer(), Self.prefilledBuffer(), ByteBufferAllocator().buffer(capacity: 3)] {
            let before = Array(buffer.readableBytesView)
            MemcacheForwarding.writeRetrieval(operation: operation, exptime: 7, key: key, into: &buffer)
            #expect(Array(buffer.readableBytesView) == before + expected)
        }
        var single = Self.prefilledBuffer()
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: 7, key: key, into: &single)
        #expect(single == list)
        // The key is read, not consumed.
        #expect(Array(key.readableBytesView) == keyBytes)
    }

    @Test(arguments: [MemcacheOperation.get, .gets, .gat, .gats])
    func oneKeyRetrievalOfAnEmptyKey(operation: MemcacheOperation) {
        // Not a valid request, but written as the list form writes it.
        var single = Self.prefilledBuffer()
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: 3, key: ByteBuffer(), into: &single)
        var list = Self.prefilledBuffer()
        MemcacheForwarding.writeRetrieval(operation: operation, exptime: 3, keys: [ByteBuffer()], into: &list)
        #expect(single == list)
        #expect(String(buffer: single).hasSuffix(" \r\n"))
    }

    @Test func oneKeyRetrievalGrowsABufferThatIsFull() {
        // Exactly full: the write must grow the buffer rather than write past its end.
        var buffer = ByteBufferAllocator().buffer(capacity: 16)
        buffer.writeBytes([UInt8](repeating: UInt8(ascii: "x"), count: buffer.capacity))
        let filled = buffer.readableBytes
        let key = ByteBuffer(string: String(repeating: "k", count: 100))
        MemcacheForwarding.writeRetrieval(operation: .gets, exptime: 0, key: key, into: &buffer)
        #expect(buffer.readableBytes == filled + 5 + 100 + 2)
        #expect(
            String(buffer: buffer) == String(repeating: "x", count: filled) + "gets " + String(buffer: key) + "\r\n"
        )
    }

    /// 100 KB of data with every byte value, `\r\n` and `END` included.
    static let largeData: [UInt8] = (0..<102_400).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 256) }

    @Test(arguments: [
        (StorageRequest.Mode.set, 5 as UInt32, 100 as Int32, 0 as UInt64, "set k 5 100 102400\r\n"),
        (.set, 0, 0, 0, "set k 0 0 102400\r\n"),
        (.cas, 4_294_967_295, -1, 18_446_744_073_709_551_615, "cas k 4294967295 -1 102400 18446744073709551615\r\n"),
        (.cas, 1, 2, 77, "cas k 1 2 102400 77\r\n"),
        (.add, 1, 2, 0, "add k 1 2 102400\r\n"),
        (.replace, 1, 2, 0, "replace k 1 2 102400\r\n"),
        (.append, 1, 2, 0, "append k 1 2 102400\r\n"),
        (.prepend, 1, 2, 0, "prepend k 1 2 102400\r\n"),
    ])
    func storageOfALargeValue(mode: StorageRequest.Mode, flags: UInt32, exptime: Int32, cas: UInt64, header: String) {
        // The data as a slice of a larger buffer, as the request decoder hands it over.
        var input = ByteBuffer(string: "set k 0 0 102400\r\n")
        input.writeBytes(Self.largeData)
        input.writeString("\r\n")
        let data = input.getSlice(at: 18, length: Self.largeData.count)!
        let request = StorageRequest(
            mode: mode,
            key: ByteBuffer(string: "k"),
            flags: flags,
            exptime: exptime,
            casUnique: cas,
            noreply: true,
            data: data
        )
        let expected = Array(header.utf8) + Self.largeData + Array("\r\n".utf8)
        var empty = ByteBuffer()
        MemcacheForwarding.writeStorage(request, into: &empty)
        #expect(empty.readableBytes == expected.count)
        #expect(Array(empty.readableBytesView) == expected)
        var filled = Self.prefilledBuffer()
        MemcacheForwarding.writeStorage(request, into: &filled)
        #expect(Array(filled.readableBytesView) == Array("get other\r\n".utf8) + expected)
        // Two in a row.
        MemcacheForwarding.writeStorage(request, into: &empty)
        #expect(Array(empty.readableBytesView) == expected + expected)
        #expect(Array(request.data.readableBytesView) == Self.largeData)
    }

    @Test func storageWithTheLongestKeyAndNumbers() {
        let key = Self.slicedKey((0..<250).map { UInt8(0x21 + $0 % 94) })
        let request = StorageRequest(
            mode: .cas,
            key: key,
            flags: .max,
            exptime: .min,
            casUnique: .max,
            noreply: false,
            data: ByteBuffer(string: "hi")
        )
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        MemcacheForwarding.writeStorage(request, into: &buffer)
        let expected =
            "cas " + String(buffer: key) + " 4294967295 -2147483648 2 18446744073709551615\r\nhi\r\n"
        #expect(String(buffer: buffer) == expected)
    }

    @Test func theProxysOwnMetaRequestsCarryTheKeyInBase64() {
        let key = ByteBuffer(bytes: [0, 0x20, 0xFF, UInt8(ascii: "k")])
        var buffer = ByteBuffer()
        MemcacheForwarding.writeOwnMeta(.get, key: key, flags: "v f t c", into: &buffer)
        MemcacheForwarding.writeOwnMeta(.delete, key: ByteBuffer(string: "k"), flags: "", into: &buffer)
        MemcacheForwarding.writeOwnMeta(.delete, key: ByteBuffer(string: "k"), flags: "C42", into: &buffer)
        MemcacheForwarding.writeOwnMeta(
            .set,
            key: ByteBuffer(string: "k"),
            flags: "ME c F3 T30",
            data: ByteBuffer(string: "hello"),
            into: &buffer
        )
        #expect(
            String(buffer: buffer)
                == "mg ACD/aw== b v f t c\r\nmd aw== b\r\nmd aw== b C42\r\nms aw== 5 b ME c F3 T30\r\nhello\r\n"
        )
    }
}
