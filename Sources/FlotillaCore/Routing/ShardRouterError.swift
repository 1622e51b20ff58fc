/// A shard list and settings a `ShardRouter` cannot be built from; `message` says what to change.
public typealias ShardRouterError = CodedError<ShardRouterErrorCode>

/// The kinds of `ShardRouterError`.
public enum ShardRouterErrorCode: String, ErrorCode {
    /// An empty shard list.
    case noShards = "no-shards"
    /// More shards than `ShardRouter.maximumShards`.
    case tooManyShards = "too-many-shards"
    /// A replication factor outside 1…min(shards, `ReplicaSet.capacity`).
    case invalidReplicas = "invalid-replicas"
    /// The same `HOST:PORT` twice.
    case duplicateShard = "duplicate-shard"
    /// A weight outside `ShardSpec.weightRange`.
    case invalidWeight = "invalid-weight"
    /// Weights so large that the ring would pass `ShardRouter.maximumRingPoints`.
    case ringTooLarge = "ring-too-large"
    /// A shard that twemproxy's ketama cannot place: a weight share too small to earn a point, or a name longer
    /// than twemproxy hashes correctly.
    case ketamaIncompatible = "ketama-incompatible"

    public static func describe(text: String, message: String) -> String {
        "cannot route over these shards: \(message)"
    }
}
