#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The capacity arithmetic of a sharded cache: how many nodes the load needs, what hit rate a
/// replicated cache gets against a sharded one, and how unevenly skewed access loads the shards.
///
/// The course's example: 400 GB of data, 10 000 req/s, 1 000 req/s and 32 GB of cache per node
/// gives 10 nodes, an 8 % hit rate when every node caches the same hot data, and 80 % when the
/// data is partitioned across them.
public struct ShardPlan: Sendable {
    /// How requests pick keys.
    public enum Access: Sendable, Hashable, Codable {
        /// Every key is equally likely.
        case uniform
        /// The key of rank r is requested with probability proportional to 1/r^exponent.
        case zipf(exponent: Double)
    }

    /// What the plan is computed from.
    public struct Input: Sendable, Hashable, Codable {
        /// Size of the whole data set, in bytes. No default.
        public var dataBytes: Double
        /// Requests per second the cluster must serve. No default.
        public var requestsPerSecond: Double
        /// Requests per second one node can serve. No default.
        public var requestsPerSecondPerNode: Double
        /// Memory one node gives to the cache, in bytes. No default.
        public var cacheBytesPerNode: Double
        /// Copies of each shard (N), kept on distinct nodes. Default 1.
        public var replicas: Int = 1
        /// How requests pick keys. Default `.uniform`.
        public var access: Access = .uniform
        /// Number of equally sized keys the data set is made of; matters under zipf access. Default 1 000 000.
        public var keys: Int = 1_000_000

        public init(
            dataBytes: Double,
            requestsPerSecond: Double,
            requestsPerSecondPerNode: Double,
            cacheBytesPerNode: Double
        ) {
            self.dataBytes = dataBytes
            self.requestsPerSecond = requestsPerSecond
            self.requestsPerSecondPerNode = requestsPerSecondPerNode
            self.cacheBytesPerNode = cacheBytesPerNode
        }
    }

    /// An input the plan cannot be computed from.
    public typealias InputError = PlanInputError

    /// The plan. Rates are fractions in 0...1; sizes are bytes.
    public struct Result: Sendable, Hashable, Codable {
        public var input: Input
        /// Nodes the load needs, ceil(rps / rps per node), and at least one per replica.
        public var nodes: Int
        /// Cache memory across all nodes: nodes × cache per node.
        public var totalCacheBytes: Double
        /// Distinct data the sharded cluster holds: total / replicas.
        public var uniqueCacheBytes: Double
        /// Nodes needed to hold every key `replicas` times.
        public var nodesForFullCache: Int
        /// Hit rate when every node caches the same hot data.
        public var hitRateUnsharded: Double
        /// Hit rate when the data is partitioned across the nodes.
        public var hitRateSharded: Double
        /// Share of all requests that go to the single hottest key.
        public var hottestKeyShare: Double
        /// Expected load of the node holding the hottest key, relative to the mean node load.
        public var hottestNodeLoadRatio: Double
        /// That node's expected load, in requests per second.
        public var hottestNodeRequestsPerSecond: Double
    }

    public var input: Input

    /// Checks `input`; throws the first problem found.
    public init(_ input: Input) throws(InputError) {
        func positive(_ value: Double, _ field: String) throws(InputError) {
            guard value > 0, value.isFinite else { throw InputError(field: field, reason: "must be above 0") }
        }
        try positive(input.dataBytes, "data")
        try positive(input.requestsPerSecond, "rps")
        try positive(input.requestsPerSecondPerNode, "rps-per-node")
        try positive(input.cacheBytesPerNode, "cache-per-node")
        guard input.replicas >= 1, input.replicas <= 1_000 else {
            throw InputError(field: "replicas", reason: "must be between 1 and 1000, got \(input.replicas)")
        }
        guard input.keys >= 1, input.keys <= 1_000_000_000_000 else {
            throw InputError(field: "keys", reason: "must be between 1 and 10^12, got \(input.keys)")
        }
        guard input.requestsPerSecond / input.requestsPerSecondPerNode <= 1e9 else {
            throw InputError(field: "rps", reason: "needs more than 10^9 nodes")
        }
        if case .zipf(let exponent) = input.access, !(exponent > 0 && exponent <= 100) {
            throw InputError(field: "access", reason: "the zipf exponent must be in (0, 100], got \(exponent)")
        }
        self.input = input
    }

    /// Computes the plan.
    public func compute() -> Result {
        let nodesForLoad = Int((input.requestsPerSecond / input.requestsPerSecondPerNode).rounded(.up))
        // Each copy of a shard needs its own node, or a failure takes all copies at once.
        let nodes = max(nodesForLoad, input.replicas)
        let total = Double(nodes) * input.cacheBytesPerNode
        // What is cached is at most the data itself, however much memory there is.
        let unique = min(total / Double(input.replicas), input.dataBytes)
        let fullCache = (Double(input.replicas) * input.dataBytes / input.cacheBytesPerNode).rounded(.up)
        // Unsharded, every node holds the same hottest bytes; sharded, their union is distinct.
        let unshardedFraction = min(1, input.cacheBytesPerNode / input.dataBytes)
        let shardedFraction = min(1, unique / input.dataBytes)

        let keys = Double(input.keys)
        let hottest: Double
        switch input.access {
        case .uniform:
            hottest = 1 / keys
        case .zipf(let exponent):
            hottest = 1 / Self.harmonic(input.keys, exponent)
        }
        // Keys are spread evenly: every shard holds keys/shards of them. The one holding the
        // hottest key also gets its fair count of the others, each at the mean of the rest. With
        // N replicas, the key's reads are shared by its N copies, as if there were nodes/N shards.
        let shards = Double(nodes) / Double(input.replicas)
        let keysPerShard = max(1, keys / shards)
        let others = input.keys > 1 ? (keysPerShard - 1) * (1 - hottest) / (keys - 1) : 0
        let ratio = (hottest + others) * shards

        return Result(
            input: input,
            nodes: nodes,
            totalCacheBytes: total,
            uniqueCacheBytes: unique,
            nodesForFullCache: fullCache < 1e18 ? Int(fullCache) : Int.max,
            hitRateUnsharded: hitRate(cachedFraction: unshardedFraction),
            hitRateSharded: hitRate(cachedFraction: shardedFraction),
            hottestKeyShare: hottest,
            hottestNodeLoadRatio: ratio,
            hottestNodeRequestsPerSecond: ratio * input.requestsPerSecond / Double(nodes)
        )
    }

    /// The share of requests served from a cache holding the hottest `cachedFraction` of the keys.
    public func hitRate(cachedFraction: Double) -> Double {
        switch input.access {
        case .uniform:
            return cachedFraction
        case .zipf(let exponent):
            // The nudge keeps 0.08 × 10^6 from flooring to 79 999 through rounding error.
            let cachedKeys = Int((cachedFraction * Double(input.keys) * (1 + 1e-12)).rounded(.down))
            return Self.harmonic(cachedKeys, exponent) / Self.harmonic(input.keys, exponent)
        }
    }

    /// Terms summed one by one; past them Euler–Maclaurin is exact to double precision for
    /// x^-s, so summing a million terms would only cost time.
    static let exactTerms = 10_000

    /// The generalized harmonic number H(n, s) = Σ_{k=1…n} 1/k^s, for n up to 10^12.
    public static func harmonic(_ n: Int, _ s: Double) -> Double {
        guard n > 0 else { return 0 }
        let m = min(n, exactTerms)
        var sum = 0.0
        if n > m { sum = harmonicTail(from: Double(m), to: Double(n), s) }
        // Smallest terms first, so they are not lost against the large ones.
        for k in stride(from: m, through: 1, by: -1) {
            sum += s == 1 ? 1 / Double(k) : pow(Double(k), -s)
        }
        return sum
    }

    /// Σ_{k=m+1…n} k^-s by Euler–Maclaurin: the integral from m to n plus the boundary corrections.
    private static func harmonicTail(from m: Double, to n: Double, _ s: Double) -> Double {
        let logRatio = log(n / m)
        // ∫ x^-s dx = (n^(1-s) − m^(1-s)) / (1-s); expm1 keeps it accurate as s nears 1.
        let integral =
            abs(1 - s) < 1e-12 ? logRatio : pow(m, 1 - s) * expm1((1 - s) * logRatio) / (1 - s)
        func f(_ x: Double) -> Double { pow(x, -s) }
        func f1(_ x: Double) -> Double { -s * pow(x, -s - 1) }
        func f3(_ x: Double) -> Double { -s * (s + 1) * (s + 2) * pow(x, -s - 3) }
        return integral + (f(n) - f(m)) / 2 + (f1(n) - f1(m)) / 12 - (f3(n) - f3(m)) / 720
    }
}
