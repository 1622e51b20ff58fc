import FlotillaBench
import FlotillaTopology
import Foundation
import NIOCore

extension DemoScenario {
    /// Starts the shards (together) and then the proxy over them, and says where they listen.
    func startCluster() async throws -> (shards: [DemoCluster.Member], proxy: DemoCluster.Member) {
        console.say(
            "flotilla demo: \(configuration.shards) cache shards behind a sharding proxy that keeps each key on "
                + "\(configuration.replicas) of them, all on loopback"
        )
        let shards = try await withThrowingTaskGroup(of: (Int, DemoCluster.Member).self) { group in
            for index in 0..<configuration.shards {
                group.addTask { (index, try await cluster.startShard(name: "shard \(index + 1)")) }
            }
            var started: [Int: DemoCluster.Member] = [:]
            for try await (index, member) in group { started[index] = member }
            return (0..<configuration.shards).map { started[$0]! }
        }
        for (index, shard) in shards.enumerated() {
            console.say("  shard \(index + 1)  \(shard.address)  flotilla cache, pid \(shard.process.pid)")
        }
        let proxy = try await cluster.startProxy(
            shards: shards.map(\.address),
            replicas: configuration.replicas,
            threads: min(System.coreCount, 2)
        )
        console.say(
            "  proxy    \(proxy.address)  flotilla cache-proxy --replicas \(configuration.replicas), pid \(proxy.process.pid)"
        )
        return (shards, proxy)
    }

    func describeLoad() {
        let gets = Int((configuration.getRatio * 100).rounded())
        let hottest = Self.hottestKeyShare(keys: configuration.keys, exponent: configuration.zipfExponent)
        console.say(
            "load: \(configuration.connections) connections to the proxy, \(gets) % gets and \(100 - gets) % sets over "
                + "\(DemoFormat.grouped(Double(configuration.keys))) keys, zipf \(configuration.zipfExponent) "
                + "(the hottest key takes \(DemoFormat.fixed(100 * hottest, digits: 1)) % of requests)"
        )
    }

    /// The share of requests that go to the most popular key: 1 / Σ k^-s.
    static func hottestKeyShare(keys: Int, exponent: Double) -> Double {
        1 / (1...max(keys, 1)).reduce(0.0) { $0 + pow(Double($1), -exponent) }
    }
}
