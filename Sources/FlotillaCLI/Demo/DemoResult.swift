import Foundation

/// What the demo measured: the closing table, or with `--json` the document printed instead
/// (snake_case keys; a field whose value is unknown is absent).
struct DemoResult: Codable, Sendable {
    /// How the demo was run.
    struct Settings: Codable, Sendable {
        var shards: Int
        var replicas: Int
        var connections: Int
        var keys: Int
        var distribution: String
        var getRatio: Double
        var durationScale: Double
    }

    /// One phase of the load: steady, shard down, recovery.
    struct Phase: Codable, Sendable {
        var name: String
        var seconds: Double
        var requests: UInt64
        /// Completed requests per second.
        var throughput: Double
        var p50Us: Double
        var p99Us: Double
        var errors: UInt64
        var errorsByKind: [String: UInt64]
        var hits: UInt64
        var misses: UInt64
        /// Hits over gets, 0…1; nil without gets.
        var hitRate: Double?
        /// Requests each shard served (its `cmd_get` + `cmd_set`), in shard order; nil when the
        /// shard could not be asked.
        var shardRequests: [UInt64?]
        /// Reads the proxy answered from a second replica after a miss or a failure.
        var fallbackReads: UInt64
        /// Writes kept for a down shard.
        var hintsQueued: UInt64
    }

    var settings: Settings
    /// The shards' addresses, in the order the proxy was given them.
    var shards: [String]
    /// Index into `shards` of the shard killed and restarted.
    var killedShard: Int
    /// From SIGKILL to the proxy's `stats` showing the shard down.
    var markedDownAfterSeconds: Double?
    /// From the restart to the proxy's `stats` showing the shard up again.
    var backAfterSeconds: Double?
    /// Hints the proxy replayed to the restarted shard (its `hints_replayed` at the end).
    var hintsReplayed: UInt64
    /// Hints still queued for the restarted shard at the end, not replayed.
    var hintsPending: UInt64
    var phases: [Phase]

    /// True when the killed shard was marked down and came back: the demo showed what it set out to.
    var recovered: Bool { markedDownAfterSeconds != nil && backAfterSeconds != nil }

    func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
