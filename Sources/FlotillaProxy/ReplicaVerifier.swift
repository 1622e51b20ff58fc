import FlotillaCore
import FlotillaMemcache
import NIOCore
import NIOPosix

/// `flotilla cache-proxy verify`: is the data the same in every store? For a sample of keys, asks
/// each of a key's home replicas directly for its value and client flags, and reports the keys
/// whose replicas disagree.
public enum ReplicaVerifier {
    public struct Report: Sendable {
        /// Keys checked.
        public var keys = 0
        /// Keys every replica holds with the same value and flags.
        public var consistent = 0
        /// Keys no replica holds.
        public var absent = 0
        /// Keys some replicas hold and others miss.
        public var partial: [String] = []
        /// Keys whose replicas hold different values or flags.
        public var divergent: [String] = []
        /// Shards that could not be asked, with the reason.
        public var unreachable: [String: String] = [:]

        public var diverges: Bool { !partial.isEmpty || !divergent.isEmpty }
    }

    public static func verify(
        shards: [ShardSpec],
        distribution: ShardRouter.Distribution,
        replicas: Int,
        keys: [String],
        timeout: Duration,
        group: any EventLoopGroup
    ) async throws -> Report {
        let router = try ShardRouter(shards: shards, distribution: distribution, replicas: replicas)
        var byShard: [Int: [String]] = [:]
        for key in keys {
            for shard in router.replicas(for: key) { byShard[shard, default: []].append(key) }
        }
        // What each shard holds for each of its keys: (flags, data), or nil for a miss.
        var held: [Int: [String: (flags: String, data: ByteBuffer)?]] = [:]
        var report = Report()
        for (shard, asked) in byShard {
            do {
                let address = try SocketAddress.makeAddressResolvingHost(shards[shard].host, port: shards[shard].port)
                let probe = try await ShardProbe.connect(to: address, group: group, timeout: timeout)
                defer { probe.close() }
                var answers: [String: (flags: String, data: ByteBuffer)?] = [:]
                var start = 0
                while start < asked.count {
                    let batch = Array(asked[start..<min(start + 256, asked.count)])
                    let requests = batch.map { key -> ByteBuffer in
                        var request = ByteBuffer()
                        MemcacheForwarding.writeOwnMeta(
                            .get,
                            key: ByteBuffer(string: key),
                            flags: "v f",
                            into: &request
                        )
                        return request
                    }
                    let replies = try await probe.pipeline(requests, expecting: .meta, timeout: timeout)
                    for (key, reply) in zip(batch, replies) {
                        if case .meta(let meta) = reply, meta.code == "VA", let data = meta.data {
                            let flags = meta.flags.map { String(buffer: $0) }.first { $0.hasPrefix("f") } ?? "f0"
                            answers[key] = (flags, data)
                        } else {
                            answers[key] = .some(nil)
                        }
                    }
                    start += batch.count
                }
                held[shard] = answers
            } catch {
                report.unreachable[shards[shard].address] = "\(error)"
            }
        }
        for key in keys {
            report.keys += 1
            let views = router.replicas(for: key).compactMap { held[$0]?[key] }
            let present = views.compactMap { $0 }
            if present.isEmpty {
                report.absent += 1
            } else if present.count < views.count {
                report.partial.append(key)
            } else if present.allSatisfy({ $0.flags == present[0].flags && $0.data == present[0].data }) {
                report.consistent += 1
            } else {
                report.divergent.append(key)
            }
        }
        return report
    }
}
