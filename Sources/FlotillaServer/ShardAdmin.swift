/// What a sharded role (the cache proxy) shows on the admin listener: `/v1/shards` and
/// `/v1/route`. Roles without shards pass none, and those paths answer 404.
public protocol ShardAdminSource: Sendable {
    /// Every shard's state now, in configuration order.
    func shardStates() async -> [ShardAdminState]
    /// The shards that hold `key` now, primary first.
    func route(key: String) -> [String]
    /// Requests sent to each shard since start, in configuration order: what the admin listener
    /// samples every second for the shards' request rates.
    func shardRequestTotals() async -> [UInt64]
}

/// One shard as the admin listener reports it.
public struct ShardAdminState: Sendable {
    public var address: String
    public var up: Bool
    /// Requests sent to the shard, their failures and latency (all event loops).
    public var traffic: OperationSnapshot
    public var outstanding: Int
    public var pendingHints: Int
    public var hintsReplayed: UInt64
    public var timesMarkedDown: UInt64

    public init(
        address: String,
        up: Bool,
        traffic: OperationSnapshot,
        outstanding: Int,
        pendingHints: Int,
        hintsReplayed: UInt64,
        timesMarkedDown: UInt64
    ) {
        self.address = address
        self.up = up
        self.traffic = traffic
        self.outstanding = outstanding
        self.pendingHints = pendingHints
        self.hintsReplayed = hintsReplayed
        self.timesMarkedDown = timesMarkedDown
    }
}
