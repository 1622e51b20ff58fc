/// Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam, 2016; HAProxy's
/// `hash-balance-factor`, Vimeo's and Google Cloud's balancers): a key keeps going to the same upstream, for its
/// cache's sake, until that upstream holds more than its share of the load; then it spills to the next one clockwise.
///
/// Each upstream has `pointsPerUpstream` points on a ring, at `RingHash("NAME-i")` as `ShardRouter`'s `.ring`
/// distribution places shards, and keys sit at `RingHash(key)` (so `ShardRouter.hash` of a `.ring` router gives the
/// same position). With `total` requests (or sessions) in flight over the `eligible` upstreams, an upstream may hold
/// at most `ceil(balanceFactor × (total + 1) / eligible)` of them, the new one included; a pick walks clockwise from
/// the key to the first eligible upstream below that bound. Since the bounds add up to more than the load, some
/// eligible upstream is always below its bound: a pick fails only when none is eligible.
///
/// With low loads a key's upstream is its plain ring owner, and removing an upstream (from the names, or by making
/// it ineligible) moves only the keys it owned. Placement depends on the set of names, not on their order.
public struct BoundedLoadHashPicker: Sendable {
    /// Points per upstream unless told otherwise: each upstream's share of the keys within about 8 % (one standard
    /// deviation) of the fair share, which the bound evens out under load.
    public static let defaultPointsPerUpstream = 160

    /// The upstreams' names (`HOST:PORT`); indices into this array name the upstreams.
    public let names: [String]
    /// The load bound as a whole percentage of the mean (125 for a factor of 1.25), as HAProxy keeps it.
    public let balancePercent: Int
    /// Ring positions in ascending order, and the upstream owning each.
    private let points: [UInt64]
    private let owners: [UInt32]

    /// A ring over `names` (non-empty names, each given once).
    ///
    /// - Parameters:
    ///   - pointsPerUpstream: points on the ring per upstream, at least 1 (default 160).
    ///   - balanceFactor: how far above the mean load an upstream may go, at least 1 (values below count as 1),
    ///     rounded to a whole percentage. Default 1.25; lower evens loads out more and moves more keys off their
    ///     owner, higher keeps keys home longer.
    public init(names: [String], pointsPerUpstream: Int = defaultPointsPerUpstream, balanceFactor: Double = 1.25) {
        let percent = balanceFactor.isFinite ? (balanceFactor * 100).rounded() : 100
        self.names = names
        self.balancePercent = Int(max(100, min(percent, 100_000)))
        let perUpstream = max(1, pointsPerUpstream)
        var ring: [(position: UInt64, owner: Int, order: Int)] = []
        ring.reserveCapacity(names.count * perUpstream)
        for (index, name) in names.enumerated() {
            // The state after "NAME-" is shared by all of the upstream's points; only the digits differ.
            var prefix = RingHash()
            prefix.combine(name)
            prefix.combine(UInt8(ascii: "-"))
            for point in 0..<perUpstream {
                var hasher = prefix
                hasher.combine(String(point))
                ring.append((hasher.value, index, ring.count))
            }
        }
        ring.sort { lhs, rhs in
            if lhs.position != rhs.position { return lhs.position < rhs.position }
            if lhs.owner != rhs.owner { return names[lhs.owner] < names[rhs.owner] }
            return lhs.order < rhs.order
        }
        self.points = ring.map(\.position)
        self.owners = ring.map { UInt32($0.owner) }
    }

    /// How many upstreams there are.
    public var count: Int { names.count }

    /// The most requests an upstream may hold, the new one included, when `totalLoad` are in flight over
    /// `eligibleCount` upstreams: `ceil(balanceFactor × (totalLoad + 1) / eligibleCount)`.
    public func bound(totalLoad: Int, eligibleCount: Int) -> Int {
        guard eligibleCount > 0 else { return 0 }
        let denominator = 100 * eligibleCount
        return (balancePercent * (max(0, totalLoad) + 1) + denominator - 1) / denominator
    }

    // MARK: Picking

    /// The first eligible upstream clockwise from `hash` whose `load` is below its bound (see the type's
    /// documentation); nil when no upstream is eligible.
    ///
    /// `isEligible` and `load` are asked once per upstream; nothing is allocated on the heap for up to a few
    /// hundred upstreams.
    public func pick(forHash hash: UInt64, where isEligible: (Int) -> Bool, load: (Int) -> Int) -> Int? {
        let count = names.count
        guard count > 0 else { return nil }
        // The load of each eligible upstream not yet passed over on the walk; -1 for the others.
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { loads -> Int? in
            var eligibleCount = 0
            var totalLoad = 0
            for upstream in 0..<count {
                let value = isEligible(upstream) ? max(0, load(upstream)) : -1
                loads.initializeElement(at: upstream, to: value)
                if value >= 0 {
                    eligibleCount += 1
                    totalLoad += value
                }
            }
            guard eligibleCount > 0 else { return nil }
            let bound = bound(totalLoad: totalLoad, eligibleCount: eligibleCount)
            var index = pointIndex(atOrAfter: hash)
            var passed = 0
            for _ in 0..<points.count {
                let upstream = Int(owners[index])
                if loads[upstream] >= 0 {
                    if loads[upstream] < bound { return upstream }
                    loads[upstream] = -1
                    passed += 1
                    if passed == eligibleCount { break }
                }
                index += 1
                if index == points.count { index = 0 }
            }
            return nil
        }
    }

    /// The upstream for `key` (see `pick(forHash:where:load:)`).
    public func pick(for key: some Collection<UInt8>, where isEligible: (Int) -> Bool, load: (Int) -> Int) -> Int? {
        pick(forHash: hash(key), where: isEligible, load: load)
    }

    /// The upstream for the UTF-8 bytes of `key` (see `pick(forHash:where:load:)`).
    public func pick(for key: some StringProtocol, where isEligible: (Int) -> Bool, load: (Int) -> Int) -> Int? {
        pick(forHash: hash(key), where: isEligible, load: load)
    }

    /// The plain consistent-hashing owner of `hash`, ignoring loads and eligibility; nil without upstreams.
    public func owner(forHash hash: UInt64) -> Int? {
        points.isEmpty ? nil : Int(owners[pointIndex(atOrAfter: hash)])
    }

    // MARK: Hashing keys

    /// The key's position on the ring: `RingHash`, as `ShardRouter`'s `.ring` distribution hashes keys.
    public func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        RingHash.hash(key)
    }

    /// The key's position on the ring, for any byte collection (a `ByteBuffer`'s readable view, `[UInt8]`).
    public func hash(_ key: some Collection<UInt8>) -> UInt64 {
        if let value = key.withContiguousStorageIfAvailable({ RingHash.hash(UnsafeRawBufferPointer($0)) }) {
            return value
        }
        return Array(key).withUnsafeBytes { RingHash.hash($0) }
    }

    /// The position of the key's UTF-8 bytes on the ring.
    public func hash(_ key: some StringProtocol) -> UInt64 {
        var hasher = RingHash()
        for byte in key.utf8 { hasher.combine(byte) }
        return hasher.value
    }

    /// The first point at or after `hash`, wrapping to the first point past the end.
    private func pointIndex(atOrAfter hash: UInt64) -> Int {
        points.withUnsafeBufferPointer { $0.ringIndex(atOrAfter: hash) }
    }
}
