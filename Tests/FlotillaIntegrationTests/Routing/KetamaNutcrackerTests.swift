import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// `ShardRouter(.ketama(hash:))` against the real thing: keys are stored through Debian's nutcracker in front of two
/// memcached servers, each memcached is then asked directly which keys it holds, and the router must name the same
/// server for every key.
@Suite(
    "Ketama: same servers as real nutcracker",
    .serialized,
    .enabled(if: Nutcracker.testsEnabled, Comment(rawValue: Nutcracker.missingMessage))
)
struct KetamaNutcrackerTests {
    /// 2000 keys: short and long, ASCII and not (bytes ≥ 0x80 exercise twemproxy's signed-char FNV).
    static let keys: [[UInt8]] = {
        var keys: [String] = []
        keys += (0..<1_000).map { "key:\($0)" }
        keys += (0..<400).map { "user/\($0 * 7_919)/photo" }
        keys += (0..<300).map { "ключ-\($0)" }
        keys += (0..<200).map { "session:\(String($0 &* 2_654_435_761 % 1_000_003, radix: 16))" }
        keys += (0..<100).map { "\(String(repeating: "long", count: 50))-\($0)" }
        return keys.map { Array($0.utf8) }
    }()

    @Test(
        "nutcracker and ShardRouter put every key on the same server",
        arguments: [
            (KeyHash.fnv1a64, [1, 1]),
            (.fnv1a64, [1, 3]),
            (.md5, [1, 1]),
            (.md5, [1, 3]),
            (.murmur, [2, 1]),
            (.fnv1a32, [1, 1]),
            (.fnv164, [3, 1]),
            (.fnv132, [1, 2]),
        ]
    )
    func sameServers(hash: KeyHash, weights: [Int]) throws {
        guard Nutcracker.path != nil, PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: Nutcracker.missingMessage))
            return
        }
        try PeerProcess.withMemcached(memoryMegabytes: 16) { first in
            try PeerProcess.withMemcached(memoryMegabytes: 16) { second in
                let shards = [
                    ShardSpec(host: "127.0.0.1", port: Int(first), weight: weights[0]),
                    ShardSpec(host: "127.0.0.1", port: Int(second), weight: weights[1]),
                ]
                try compare(shards: shards, hash: hash, memcachedPorts: [first, second])
            }
        }
    }

    /// twemproxy hashes a server on the default port 11211 by its host alone ("127.0.0.1-0", not
    /// "127.0.0.1:11211-0"); this needs a memcached on 11211, so it runs only when that port is free.
    @Test(
        "a server on port 11211 is hashed by its host alone",
        .enabled("port 11211 is in use on 127.0.0.1") { Nutcracker.loopbackPortIsFree(11_211) }
    )
    func defaultPortServerName() throws {
        guard Nutcracker.path != nil, PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: Nutcracker.missingMessage))
            return
        }
        try Nutcracker.withMemcached(port: 11_211) {
            try PeerProcess.withMemcached(memoryMegabytes: 16) { other in
                let shards = [
                    ShardSpec(host: "127.0.0.1", port: 11_211),
                    ShardSpec(host: "127.0.0.1", port: Int(other)),
                ]
                try compare(shards: shards, hash: .md5, memcachedPorts: [11_211, other])
            }
        }
    }

    /// Stores every key through a nutcracker over `shards`, then requires each key to sit on exactly the memcached
    /// the router picks.
    private func compare(shards: [ShardSpec], hash: KeyHash, memcachedPorts: [UInt16]) throws {
        let router = try ShardRouter(shards: shards, distribution: .ketama(hash: hash), replicas: 1)
        let pool = Nutcracker.Pool(servers: shards.map { "\($0.address):\($0.weight)" }, hash: hash.description)
        try Nutcracker.withNutcracker(pool) { proxyPort in
            let proxy = try WireClient(port: proxyPort)
            defer { proxy.close() }
            for batch in Self.batches(of: Self.keys, size: 200) {
                let stored = try Self.exchange(proxy, batch.map { Self.setCommand($0) }, replies: batch.count)
                let lines = Self.lines(stored)
                try #require(lines.count == batch.count && lines.allSatisfy { $0.elementsEqual("STORED".utf8) })
            }
        }
        var holders: [[UInt8]: [Int]] = [:]
        for (shard, port) in memcachedPorts.enumerated() {
            let server = try WireClient(port: port)
            defer { server.close() }
            for batch in Self.batches(of: Self.keys, size: 100) {
                let command = Array("get ".utf8) + Array(batch.joined(separator: [UInt8(ascii: " ")])) + [13, 10]
                let reply = try Self.exchange(server, [command], replies: nil)
                for line in Self.lines(reply) where line.starts(with: Array("VALUE ".utf8)) {
                    let key = line.dropFirst(6).prefix { $0 != UInt8(ascii: " ") }
                    holders[Array(key), default: []].append(shard)
                }
            }
        }
        var mismatches: [String] = []
        for key in Self.keys {
            let expected = router.primary(for: key)
            let actual = holders[key] ?? []
            if actual != [expected] {
                mismatches.append("\(String(decoding: key, as: UTF8.self)): router \(expected), memcached \(actual)")
            }
        }
        let counts = memcachedPorts.indices.map { shard in holders.values.filter { $0 == [shard] }.count }
        #expect(
            mismatches.isEmpty,
            "\(mismatches.count) of \(Self.keys.count) keys differ (\(hash), \(shards)): \(mismatches.prefix(10))"
        )
        // Both servers must be in use, or the comparison proves little.
        #expect(counts.allSatisfy { $0 > 0 }, "keys per server: \(counts)")
    }

    // MARK: Memcached text protocol

    private static func setCommand(_ key: [UInt8]) -> [UInt8] {
        Array("set ".utf8) + key + Array(" 0 0 1\r\nx\r\n".utf8)
    }

    private static func batches(of keys: [[UInt8]], size: Int) -> [ArraySlice<[UInt8]>] {
        stride(from: 0, to: keys.count, by: size).map { keys[$0..<min($0 + size, keys.count)] }
    }

    /// Sends `commands` pipelined and reads until `replies` lines arrived, or (nil) until the reply ends in `END`.
    private static func exchange(_ client: WireClient, _ commands: [[UInt8]], replies: Int?) throws -> [UInt8] {
        guard client.send(Array(commands.joined())) else {
            throw PeerProcess.PeerError(description: "send failed")
        }
        let end = Array("END\r\n".utf8)
        let result = client.read(timeout: .seconds(10)) { bytes in
            if let replies { return lines(bytes).count >= replies && bytes.last == 10 }
            return bytes.count >= end.count && bytes.suffix(end.count).elementsEqual(end)
        }
        guard result.outcome == .satisfied else {
            throw PeerProcess.PeerError(
                description: "no complete reply (\(result.outcome)) after \(result.bytes.count) bytes"
            )
        }
        return result.bytes
    }

    /// The CRLF-terminated lines in `bytes`.
    private static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            if bytes[index] == 13 && bytes[index + 1] == 10 {
                lines.append(bytes[start..<index])
                start = index + 2
                index += 2
            } else {
                index += 1
            }
        }
        return lines
    }
}
