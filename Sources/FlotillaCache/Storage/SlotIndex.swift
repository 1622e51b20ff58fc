import NIOCore

/// A stripe's key index: open addressing with linear probing over the items' own keys. A bucket is
/// 8 bytes (the key's 32-bit hash and its item's slot), where `Dictionary<ByteBuffer, Int32>` kept
/// a copy of every key's `ByteBuffer` (24 bytes) and its value in each bucket: about 40 bytes less
/// per item. Keys are compared through `matches`, which reads the item in its slot. Deletion shifts
/// the following entries back (no tombstones), so lookups never slow down with churn.
///
/// The hash is SipHash (Swift's `Hasher`, seeded per process), as the `Dictionary` used: a client
/// cannot choose keys that collide.
struct SlotIndex {
    /// `hash << 32 | (slot + 1)`; 0 is an empty bucket.
    private var buckets: [UInt64]
    private var mask: Int
    private(set) var count = 0

    init() {
        buckets = Array(repeating: 0, count: 16)
        mask = 15
    }

    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer) -> UInt32 {
        var hasher = Hasher()
        hasher.combine(bytes: key)
        return UInt32(truncatingIfNeeded: hasher.finalize())
    }

    @inline(__always)
    private static func entry(hash: UInt32, slot: Int32) -> UInt64 {
        UInt64(hash) << 32 | UInt64(UInt32(bitPattern: slot) &+ 1)
    }

    @inline(__always)
    private static func slot(of entry: UInt64) -> Int32 {
        Int32(bitPattern: UInt32(truncatingIfNeeded: entry) &- 1)
    }

    /// The slot of the item whose key has `hash` and for which `matches` holds.
    @inline(__always)
    func find(hash: UInt32, matches: (Int32) -> Bool) -> Int32? {
        var bucket = Int(hash) & mask
        while true {
            let entry = buckets[bucket]
            if entry == 0 { return nil }
            if UInt32(truncatingIfNeeded: entry >> 32) == hash, matches(Self.slot(of: entry)) {
                return Self.slot(of: entry)
            }
            bucket = (bucket + 1) & mask
        }
    }

    /// Adds `slot` under `hash`; the key must not be in the index.
    mutating func insert(hash: UInt32, slot: Int32) {
        if (count + 1) * 4 > buckets.count * 3 { grow() }
        var bucket = Int(hash) & mask
        while buckets[bucket] != 0 { bucket = (bucket + 1) & mask }
        buckets[bucket] = Self.entry(hash: hash, slot: slot)
        count += 1
    }

    /// Removes `slot`, indexed under `hash`.
    mutating func remove(hash: UInt32, slot: Int32) {
        let wanted = Self.entry(hash: hash, slot: slot)
        var hole = Int(hash) & mask
        while buckets[hole] != wanted {
            guard buckets[hole] != 0 else { return }
            hole = (hole + 1) & mask
        }
        // Backward shift: move up each following entry whose home bucket is at or before the hole.
        var next = (hole + 1) & mask
        while buckets[next] != 0 {
            let home = Int(UInt32(truncatingIfNeeded: buckets[next] >> 32)) & mask
            // Whether `home` lies cyclically outside (hole, next]: then the entry may fill the hole.
            let distanceToNext = (next - home) & mask
            let distanceToHole = (hole - home) & mask
            if distanceToHole < distanceToNext || home == hole {
                buckets[hole] = buckets[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        buckets[hole] = 0
        count -= 1
    }

    mutating func removeAll() {
        self = SlotIndex()
    }

    private mutating func grow() {
        let old = buckets
        buckets = Array(repeating: 0, count: old.count * 2)
        mask = buckets.count - 1
        for entry in old where entry != 0 {
            var bucket = Int(UInt32(truncatingIfNeeded: entry >> 32)) & mask
            while buckets[bucket] != 0 { bucket = (bucket + 1) & mask }
            buckets[bucket] = entry
        }
    }
}
