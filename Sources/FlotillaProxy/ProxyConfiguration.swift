import FlotillaCore

/// Settings of `flotilla cache-proxy`.
public struct ProxyConfiguration: Sendable {
    /// How many replicas must acknowledge a write before the client hears it.
    public enum Consistency: String, Sendable, CaseIterable {
        /// Every live replica.
        case all
        /// A majority of the replica set (N/2 + 1).
        case quorum
        /// The first replica; the others finish in the background (eventual consistency).
        case one

        /// Acknowledgements needed out of `replicas`.
        public func required(of replicas: Int) -> Int {
            switch self {
            case .all: replicas
            case .quorum: replicas / 2 + 1
            case .one: min(1, replicas)
            }
        }
    }

    public var listen = HostPort(host: "127.0.0.1", port: 22122)
    public var shards: [ShardSpec]
    public var replicas = 2
    public var consistency = Consistency.quorum
    public var distribution = ShardRouter.Distribution.ring
    public var readRepair = false
    /// Deadline of one request to a shard.
    public var shardTimeout: Duration = .milliseconds(500)
    /// Consecutive failures (timeouts, refused connects) that mark a shard down.
    public var failureLimit = 3
    /// Requests queued or in flight to one shard from one event loop; beyond it, `SERVER_ERROR`.
    public var maxOutstandingPerShard = 4_096
    /// Writes kept for a down shard, replayed when it returns.
    public var maxHintsPerShard = 100_000
    public var maxConnections = 1024
    public var maxItemSize = 1 << 20
    public var drainTimeout: Duration = .seconds(10)

    public init(shards: [ShardSpec]) {
        self.shards = shards
    }
}
