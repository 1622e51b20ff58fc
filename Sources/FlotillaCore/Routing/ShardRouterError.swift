/// A shard list and settings a `ShardRouter` cannot be built from: `code` says what kind of problem, `message` says
/// what was wrong and what to change.
public struct ShardRouterError: Error, Hashable, CustomStringConvertible {
    /// The kind of problem; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case noShards = "no-shards"
            case tooManyShards = "too-many-shards"
            case invalidReplicas = "invalid-replicas"
            case duplicateShard = "duplicate-shard"
            case invalidWeight = "invalid-weight"
            case ringTooLarge = "ring-too-large"
            case ketamaIncompatible = "ketama-incompatible"
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// An empty shard list.
        public static let noShards = Code(.noShards)
        /// More shards than `ShardRouter.maximumShards`.
        public static let tooManyShards = Code(.tooManyShards)
        /// A replication factor outside 1…min(shards, `ReplicaSet.capacity`).
        public static let invalidReplicas = Code(.invalidReplicas)
        /// The same `HOST:PORT` twice.
        public static let duplicateShard = Code(.duplicateShard)
        /// A weight outside `ShardSpec.weightRange`.
        public static let invalidWeight = Code(.invalidWeight)
        /// Weights so large that the ring would pass `ShardRouter.maximumRingPoints`.
        public static let ringTooLarge = Code(.ringTooLarge)
        /// A shard that twemproxy's ketama cannot place: a weight share too small to earn a point, or a name longer
        /// than twemproxy hashes correctly.
        public static let ketamaIncompatible = Code(.ketamaIncompatible)

        /// A short, bounded label fit for a metric dimension or a log field (`invalid-replicas`).
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// A short, bounded label fit for a metric dimension (`invalid-replicas`).
    public var shortDescription: String { code.description }

    public var description: String { "cannot route over these shards: \(message)" }
}
