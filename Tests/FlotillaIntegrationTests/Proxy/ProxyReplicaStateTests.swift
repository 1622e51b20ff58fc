import FlotillaTestSupport
import Foundation
import Testing

/// Regression tests for replies that depended on which replica answered (issue 4, found by the proxy differential
/// test): the proxy runs over three memcached shards with `--replicas 2 --consistency all`, and each sequence is
/// also sent to one reference memcached whose replies it must match.
@Suite(
    "cache-proxy: replicas keep the state a single memcached would have",
    .serialized,
    .enabled(if: PeerProcess.memcachedTestsEnabled, Comment(rawValue: PeerProcess.memcachedMissingMessage))
)
struct ProxyReplicaStateTests {
    /// A vivified placeholder (`mg … N`) and a won recache token (`mg … R`) are on every replica, so a later read
    /// finds the same item state wherever it goes: the token is handed out once.
    @Test func vivifyAndRecacheChangeEveryReplica() throws {
        try withProxyAndReference { proxy, reference in
            // Reads in a separate exchange: the proxy sends a client's reads of a key it has just written to the
            // primary, and this is about the other replica.
            let setup = "mg viv N30 v\r\nset r 0 3600 1\r\na\r\nmg r R100000 v\r\n"
            let reads = String(repeating: "get viv\r\nmg viv v\r\nmg r v\r\nmg r s\r\n", count: 12)
            for script in [setup, reads] {
                let expected = try reference.exchange(script)
                #expect(try proxy.exchange(script) == expected)
            }
        }
    }

    /// A stale item's win token (`md … I`, then `W` once and `Z` after) belongs to one server: every `mg` agrees.
    @Test func staleItemHandsOutOneWinToken() throws {
        try withProxyAndReference { proxy, reference in
            let reads = String(repeating: "mg st v\r\nmg st s t\r\n", count: 12)
            for script in ["set st 0 0 2\r\nab\r\nmd st I\r\n", reads] {
                let expected = try reference.exchange(script)
                #expect(try proxy.exchange(script) == expected)
            }
        }
    }

    /// The copy of a successful compare-and-swap reaches the other replicas before the same client's next request:
    /// a pipelined delete must not be overtaken by it and leave the swapped value behind on one replica.
    @Test func compareAndSwapCopyIsNotOvertakenByTheNextRequest() throws {
        try withProxyAndReference { proxy, _ in
            for round in 0..<8 {
                let key = "cs\(round)"
                let cas = try proxy.casUnique(key: key)
                // Meta CAS, then the text command.
                let swap =
                    round.isMultiple(of: 2)
                    ? "ms \(key) 1 C\(cas)\r\nb\r\ndelete \(key)\r\n"
                    : "cas \(key) 0 0 1 \(cas)\r\nb\r\ndelete \(key)\r\n"
                let swapped = try proxy.exchange(swap)
                #expect(swapped == (round.isMultiple(of: 2) ? "HD\r\nDELETED\r\n" : "STORED\r\nDELETED\r\n"))
                // Reads spread over both replicas: neither may still hold the key.
                let reads = try proxy.exchange(String(repeating: "get \(key)\r\n", count: 12))
                #expect(reads == String(repeating: "END\r\n", count: 12), "round \(round)")
            }
        }
    }

    /// A multi-key read retries a miss on another replica only if the client has not written the key since: the
    /// check is made when the retry leaves, not when the miss arrives (another shard's reply may hold the retry
    /// back while the write goes out).
    @Test func multiKeyFallbackNeverSeesALaterWrite() throws {
        try withProxyAndReference { proxy, _ in
            for round in 0..<150 {
                let key = "fb\(round)"
                let read = Array("get m1 m2 m3 m4 m5 \(key)\r\n".utf8)
                let write = Array("set \(key) 0 0 1\r\nx\r\nmn\r\n".utf8)
                proxy.client.send(read + write, chunkSizes: [read.count], pauseMicroseconds: [UInt32(round % 5) * 150])
                let reply = proxy.client.read(timeout: .seconds(5)) { $0.suffix(4).elementsEqual("MN\r\n".utf8) }
                #expect(
                    String(decoding: reply.bytes, as: UTF8.self) == "END\r\nSTORED\r\nMN\r\n",
                    "round \(round): the read saw the write sent after it"
                )
            }
        }
    }

    // MARK: Support

    /// One connection, with whole-script exchanges ended by an `mn` sentinel.
    final class Side {
        let client: WireClient

        init(port: UInt16) throws {
            client = try WireClient(port: port)
        }

        /// Sends `script` and a sentinel `mn`; the replies before the sentinel's `MN`.
        func exchange(_ script: String) throws -> String {
            client.send(Array((script + "mn\r\n").utf8))
            let reply = client.read(timeout: .seconds(5)) { $0.suffix(4).elementsEqual("MN\r\n".utf8) }
            guard reply.outcome == .satisfied else {
                throw WireClient.WireError(
                    description: "no complete reply: \(String(decoding: reply.bytes, as: UTF8.self))"
                )
            }
            return String(decoding: reply.bytes.dropLast(4), as: UTF8.self)
        }

        /// Sets `key` to `a` and returns its CAS unique as the proxy hands it out.
        func casUnique(key: String) throws -> String {
            let reply = try exchange("set \(key) 0 0 1\r\na\r\nmg \(key) c\r\n")
            guard let line = reply.split(separator: "\r\n").last, line.hasPrefix("HD c") else {
                throw WireClient.WireError(description: "no CAS unique in \(reply)")
            }
            return String(line.dropFirst(4))
        }
    }

    private func withProxyAndReference(_ body: (Side, Side) throws -> Void) throws {
        guard PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
            return
        }
        try PeerProcess.withReferenceAndProxy { referencePort, proxy in
            try body(Side(port: proxy.dataPort), Side(port: referencePort))
        }
    }
}
