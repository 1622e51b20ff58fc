/// One shard's request counter (`cmd_get` + `cmd_set`), and which process it came from.
struct ShardSample: Sendable {
    var pid: String
    var requests: UInt64

    static func fetch(_ shard: DemoCluster.Member) async -> ShardSample? {
        guard let stats = try? await MemcacheStats.fetch(port: shard.dataPort) else { return nil }
        return ShardSample(pid: stats["pid"] ?? "", requests: stats.counter("cmd_get") + stats.counter("cmd_set"))
    }

    /// Requests served between two samples; a new process counts from zero.
    static func delta(_ before: ShardSample?, _ after: ShardSample?) -> UInt64? {
        guard let after else { return nil }
        guard let before, before.pid == after.pid, after.requests >= before.requests else { return after.requests }
        return after.requests - before.requests
    }
}
