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
}
