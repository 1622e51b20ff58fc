import Crypto

extension ShardRouter {
    /// Points in ascending order of position, and the shard owning each.
    struct Continuum {
        var points: [UInt64]
        var owners: [UInt16]
    }

    /// One point before sorting; `order` breaks ties between equal positions.
    private struct Point {
        var position: UInt64
        var shard: Int
        var order: Int
    }

    // MARK: ring

    /// `ringPointsPerWeight × weight` points per shard at `RingHash("HOST:PORT-i")`, i = 0, 1, ….
    ///
    /// Equal positions (vanishingly rare in 64 bits) are ordered by shard address, so the continuum depends on the
    /// set of shards and not on the order they were listed in.
    static func ringContinuum(_ shards: [ShardSpec]) throws(ShardRouterError) -> Continuum {
        let totalWeight = shards.reduce(0) { $0 + $1.weight }
        let pointCount = totalWeight * ringPointsPerWeight
        guard pointCount <= maximumRingPoints else {
            throw ShardRouterError(
                code: .ringTooLarge,
                message: "a total weight of \(totalWeight) needs \(pointCount) ring points, more than the "
                    + "\(maximumRingPoints) allowed; use weights that add up to at most "
                    + "\(maximumRingPoints / ringPointsPerWeight)"
            )
        }
        var points: [Point] = []
        points.reserveCapacity(pointCount)
        for (shardIndex, shard) in shards.enumerated() {
            // The hash state after "HOST:PORT-" is shared by all of the shard's points; only the digits differ.
            var prefix = RingHash()
            prefix.combine(shard.address)
            prefix.combine(UInt8(ascii: "-"))
            for point in 0..<(shard.weight * ringPointsPerWeight) {
                var hasher = prefix
                hasher.combine(String(point))
                points.append(Point(position: hasher.value, shard: shardIndex, order: points.count))
            }
        }
        let addresses = shards.map(\.address)
        points.sort { lhs, rhs in
            if lhs.position != rhs.position { return lhs.position < rhs.position }
            if lhs.shard != rhs.shard { return addresses[lhs.shard] < addresses[rhs.shard] }
            return lhs.order < rhs.order
        }
        return Continuum(points: points.map(\.position), owners: points.map { UInt16($0.shard) })
    }

    // MARK: ketama

    /// twemproxy's longest hashed point name: `ketama_update` formats "NAME-i" into an 86-byte buffer, and longer
    /// names would have it hash bytes past the end of what it formatted.
    static let ketamaMaximumPointNameLength = 85

    /// twemproxy's continuum (`ketama_update` in nc_ketama.c, with every server live):
    /// - each server gets `floorf(weight / totalWeight × 160 / 4 × serverCount + 1e-10) × 4` points, computed in
    ///   `float` as C does, with the 1e-10 added in `double`;
    /// - its points come from MD5("NAME-i") for i = 0, 1, …, four 32-bit little-endian words per digest, where NAME
    ///   is `ShardSpec.ketamaName` (twemproxy's server name when none is configured);
    /// - points are sorted by position; equal positions keep insertion order (glibc's `qsort`, a merge sort, is
    ///   stable for this element size).
    static func ketamaContinuum(_ shards: [ShardSpec]) throws(ShardRouterError) -> Continuum {
        let pointsPerServer: Float = 160
        let pointsPerHash = 4
        let totalWeight = Float(UInt32(shards.reduce(0) { $0 + $1.weight }))
        let serverCount = Float(UInt32(shards.count))
        var points: [Point] = []
        for (shardIndex, shard) in shards.enumerated() {
            let share = Float(UInt32(shard.weight)) / totalWeight
            let scaled = share * pointsPerServer / Float(pointsPerHash) * serverCount
            let nudged = Float(Double(scaled) + 0.000_000_000_1)
            let pointCount = Int(UInt32(nudged.rounded(.down) * Float(pointsPerHash)))
            guard pointCount > 0 else {
                throw ShardRouterError(
                    code: .ketamaIncompatible,
                    message: "\(shard.address) with weight \(shard.weight) of \(Int(totalWeight)) gets no point on "
                        + "a ketama continuum; raise its weight"
                )
            }
            for hashIndex in 0..<(pointCount / pointsPerHash) {
                let name = "\(shard.ketamaName)-\(hashIndex)"
                guard name.utf8.count <= ketamaMaximumPointNameLength else {
                    throw ShardRouterError(
                        code: .ketamaIncompatible,
                        message: "ketama point name \"\(name)\" is longer than the "
                            + "\(ketamaMaximumPointNameLength) bytes twemproxy hashes correctly; use a shorter host"
                    )
                }
                var utf8 = name
                let digest = utf8.withUTF8 { bytes in
                    var md5 = Insecure.MD5()
                    md5.update(bufferPointer: UnsafeRawBufferPointer(bytes))
                    return md5.finalize()
                }
                digest.withUnsafeBytes { bytes in
                    for word in 0..<pointsPerHash {
                        let value = bytes.loadUnaligned(fromByteOffset: word * 4, as: UInt32.self).littleEndian
                        points.append(Point(position: UInt64(value), shard: shardIndex, order: points.count))
                    }
                }
            }
        }
        points.sort { lhs, rhs in
            lhs.position != rhs.position ? lhs.position < rhs.position : lhs.order < rhs.order
        }
        return Continuum(points: points.map(\.position), owners: points.map { UInt16($0.shard) })
    }
}
