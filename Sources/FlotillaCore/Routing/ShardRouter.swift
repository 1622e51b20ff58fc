/// Places each key on `replicas` distinct shards by consistent hashing: a pure, immutable value the cache proxy
/// builds once from `--shards`, `--replicas` and `--distribution` and consults on every request.
///
/// Both distributions put points on a circle (the continuum) and give a key to the first point at or clockwise after
/// the key's hash. The key's replica set is the first `replicas` distinct shards met walking clockwise from there;
/// while a shard is down (`isLive` says false) the walk passes over it, so its keys' sets take the next live shards
/// and writes still reach `replicas` live shards. Keys whose set did not include the down shard keep their set.
///
/// - `.ring` (the default): 512 points per unit of weight for each shard, at `RingHash("HOST:PORT-i")`; keys at
///   `RingHash(key)` (FNV-1a 64 then `fmix64`). 512 rather than ketama's 160 keeps each shard's share within about
///   1 % (one standard deviation) of its fair share; 160 points give about 2 %. Placement depends on the set of
///   shards, not on their order in the list.
/// - `.ketama(hash:)`: twemproxy's continuum, byte for byte, so that the primary is the server nutcracker with
///   `distribution: ketama` and the same `hash:` and server list would pick (see `ShardRouter+Continuum.swift`).
///   Unlike twemproxy, a down shard is skipped on the walk rather than ejected and the continuum rebuilt.
public struct ShardRouter: Sendable {
    /// How keys are placed on shards.
    public enum Distribution: Sendable, Hashable, CustomStringConvertible {
        /// Flotilla's consistent hashing with virtual nodes (see `ShardRouter`).
        case ring
        /// twemproxy's `distribution: ketama` with the given key `hash:`.
        case ketama(hash: KeyHash)

        public var description: String {
            switch self {
            case .ring: "ring"
            case .ketama(let hash): "ketama(\(hash))"
            }
        }
    }

    /// Points per unit of weight on the `.ring` distribution.
    public static let ringPointsPerWeight = 512
    /// The most points a `.ring` may have (total weight × `ringPointsPerWeight`), bounding its memory to ~10 MiB.
    public static let maximumRingPoints = 1 << 20
    /// The most shards a router accepts.
    public static let maximumShards = 4_096

    /// The shards, in the order given; replica sets hold indices into this array.
    public let shards: [ShardSpec]
    public let distribution: Distribution
    /// How many distinct shards hold each key.
    public let replicaCount: Int

    /// The continuum: point positions in ascending order, and the shard owning each point.
    let points: [UInt64]
    let owners: [UInt16]
    /// For `.ketama`, the key hash; nil for `.ring`.
    private let ketamaHash: KeyHash?
    /// How many distinct shards own at least one point (all of them, except in a degenerate ketama setup).
    private let shardsOnContinuum: Int

    /// Builds the continuum for `shards`.
    ///
    /// - Throws: `ShardRouterError` when the list is empty or too long, names a shard twice, has a weight outside
    ///   `ShardSpec.weightRange`, when `replicas` is not in 1…min(shards, `ReplicaSet.capacity`), or when the
    ///   distribution cannot place every shard (see the error codes).
    public init(shards: [ShardSpec], distribution: Distribution = .ring, replicas: Int = 2) throws(ShardRouterError) {
        guard !shards.isEmpty else {
            throw ShardRouterError(code: .noShards, message: "no shards given; list at least one HOST:PORT")
        }
        guard shards.count <= Self.maximumShards else {
            throw ShardRouterError(
                code: .tooManyShards,
                message: "\(shards.count) shards given; at most \(Self.maximumShards) are supported"
            )
        }
        let maximumReplicas = min(shards.count, ReplicaSet.capacity)
        guard (1...maximumReplicas).contains(replicas) else {
            throw ShardRouterError(
                code: .invalidReplicas,
                message: "replicas \(replicas) must be from 1 to \(maximumReplicas) "
                    + "(\(shards.count) shard\(shards.count == 1 ? "" : "s"), at most \(ReplicaSet.capacity) replicas)"
            )
        }
        var seen = Set<String>()
        for shard in shards {
            guard seen.insert(shard.address.lowercased()).inserted else {
                throw ShardRouterError(code: .duplicateShard, message: "\(shard.address) is listed twice")
            }
            guard ShardSpec.weightRange.contains(shard.weight) else {
                throw ShardRouterError(
                    code: .invalidWeight,
                    message: "\(shard.address) has weight \(shard.weight); weights are from "
                        + "\(ShardSpec.weightRange.lowerBound) to \(ShardSpec.weightRange.upperBound)"
                )
            }
        }
        let continuum: Continuum
        switch distribution {
        case .ring:
            continuum = try Self.ringContinuum(shards)
            ketamaHash = nil
        case .ketama(let hash):
            continuum = try Self.ketamaContinuum(shards)
            ketamaHash = hash
        }
        self.shards = shards
        self.distribution = distribution
        self.replicaCount = replicas
        self.points = continuum.points
        self.owners = continuum.owners
        self.shardsOnContinuum = Set(continuum.owners).count
    }

    // MARK: Hashing keys

    /// The key's position on the continuum. For `.ketama` this is twemproxy's 32-bit key hash (0 for an empty key,
    /// as twemproxy has it).
    public func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        guard let ketamaHash else { return RingHash.hash(key) }
        return key.isEmpty ? 0 : UInt64(ketamaHash.hash(key))
    }

    /// The key's position on the continuum, for any byte collection (a `ByteBuffer`'s readable view, `[UInt8]`).
    public func hash(_ key: some Collection<UInt8>) -> UInt64 {
        if let value = key.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return value
        }
        return Array(key).withUnsafeBytes { hash($0) }
    }

    /// The position of the key's UTF-8 bytes on the continuum.
    public func hash(_ key: some StringProtocol) -> UInt64 {
        if let value = key.utf8.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return value
        }
        return hash(Array(key.utf8))
    }

    // MARK: Placement

    /// The shard owning the first point at or clockwise after `hash`: the key's primary when every shard is live.
    public func primary(forHash hash: UInt64) -> Int {
        Int(owners[pointIndex(atOrAfter: hash)])
    }

    /// The key's primary shard when every shard is live.
    public func primary(for key: UnsafeRawBufferPointer) -> Int {
        primary(forHash: hash(key))
    }

    /// The key's primary shard when every shard is live.
    public func primary(for key: some Collection<UInt8>) -> Int {
        primary(forHash: hash(key))
    }

    /// The key's primary shard when every shard is live.
    public func primary(for key: some StringProtocol) -> Int {
        primary(forHash: hash(key))
    }

    /// The first `replicaCount` distinct live shards clockwise from `hash`, primary first; fewer when fewer are live.
    ///
    /// `isLive` is asked at most once per shard. Allocates nothing for routers of up to 64 shards.
    public func replicaSet(forHash hash: UInt64, isLive: (Int) -> Bool = { _ in true }) -> ReplicaSet {
        var replicas = ReplicaSet()
        var visited = ShardBitSet(capacity: shards.count)
        var visitedCount = 0
        var index = pointIndex(atOrAfter: hash)
        for _ in 0..<points.count {
            let shard = Int(owners[index])
            if visited.insert(shard) {
                if isLive(shard) {
                    replicas.append(shard)
                    if replicas.count == replicaCount { break }
                }
                visitedCount += 1
                if visitedCount == shardsOnContinuum { break }
            }
            index += 1
            if index == points.count { index = 0 }
        }
        return replicas
    }

    /// The key's replica set (see `replicaSet(forHash:isLive:)`).
    public func replicaSet(for key: UnsafeRawBufferPointer, isLive: (Int) -> Bool = { _ in true }) -> ReplicaSet {
        replicaSet(forHash: hash(key), isLive: isLive)
    }

    /// The key's replica set (see `replicaSet(forHash:isLive:)`).
    public func replicaSet(for key: some Collection<UInt8>, isLive: (Int) -> Bool = { _ in true }) -> ReplicaSet {
        replicaSet(forHash: hash(key), isLive: isLive)
    }

    /// The key's replica set (see `replicaSet(forHash:isLive:)`).
    public func replicaSet(for key: some StringProtocol, isLive: (Int) -> Bool = { _ in true }) -> ReplicaSet {
        replicaSet(forHash: hash(key), isLive: isLive)
    }

    /// The key's replicas as shard indices, primary first (see `replicaSet(forHash:isLive:)`).
    public func replicas(for key: some Collection<UInt8>, isLive: (Int) -> Bool = { _ in true }) -> [Int] {
        Array(replicaSet(for: key, isLive: isLive))
    }

    /// The key's replicas as shard indices, primary first (see `replicaSet(forHash:isLive:)`).
    public func replicas(for key: some StringProtocol, isLive: (Int) -> Bool = { _ in true }) -> [Int] {
        Array(replicaSet(for: key, isLive: isLive))
    }

    // MARK: Shares

    /// The exact fraction of the key-hash space each shard owns as primary, from the arcs between points (the key
    /// hash space is 2⁶⁴ for `.ring`, 2³² for `.ketama`). Indexed like `shards`; sums to 1.
    public func ownership() -> [Double] {
        let space = ketamaHash == nil ? 0x1p64 : 0x1p32
        var arcs = [Double](repeating: 0, count: shards.count)
        for index in points.indices {
            // The arc ending at this point; the first point's arc wraps around from the last one.
            let previous = index == 0 ? points[points.count - 1] : points[index - 1]
            let arc: Double
            if index == 0 {
                let wrapped = ketamaHash == nil ? points[0] &- previous : points[0] + (1 << 32) - previous
                arc = wrapped == 0 ? space : Double(wrapped)
            } else {
                arc = Double(points[index] - previous)
            }
            arcs[Int(owners[index])] += arc
        }
        return arcs.map { $0 / space }
    }

    /// The fraction of `keys` whose primary is each shard, indexed like `shards` (all zero for no keys).
    public func primaryShares<Keys: Sequence>(of keys: Keys) -> [Double] where Keys.Element: StringProtocol {
        var counts = [Int](repeating: 0, count: shards.count)
        var total = 0
        for key in keys {
            counts[primary(for: key)] += 1
            total += 1
        }
        return counts.map { total == 0 ? 0 : Double($0) / Double(total) }
    }

    // MARK: Lookup

    /// The first point at or after `hash`, used for both distributions.
    @inline(__always)
    private func pointIndex(atOrAfter hash: UInt64) -> Int {
        points.withUnsafeBufferPointer { $0.ringIndex(atOrAfter: hash) }
    }
}

/// A set of shard indices that lives in one word for up to 64 shards and allocates only beyond that.
private struct ShardBitSet {
    private var small: UInt64 = 0
    private var large: [UInt64]

    init(capacity: Int) {
        large = capacity > 64 ? [UInt64](repeating: 0, count: (capacity + 63) / 64) : []
    }

    /// Adds `shard`; true if it was not already present.
    @inline(__always)
    mutating func insert(_ shard: Int) -> Bool {
        let bit = UInt64(1) << UInt64(shard & 63)
        if large.isEmpty {
            defer { small |= bit }
            return small & bit == 0
        }
        let word = shard >> 6
        defer { large[word] |= bit }
        return large[word] & bit == 0
    }
}
