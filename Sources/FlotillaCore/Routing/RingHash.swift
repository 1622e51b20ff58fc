/// The 64-bit hash of the `.ring` distribution: FNV-1a 64 over the bytes, then MurmurHash3's `fmix64` finalizer.
///
/// FNV-1a is short, allocation-free, streamable and fast enough for memcached keys (at most 250 bytes), but its high
/// bits mix poorly for short, similar inputs (`key:1`, `key:2`); `fmix64` spreads every input bit over all 64 output
/// bits, so keys and virtual-node points land uniformly on the ring. Not a defence against chosen keys: a client that
/// crafts keys to load one shard can do so with any unkeyed hash, and consistent hashing needs an unkeyed one.
struct RingHash {
    private var state: UInt64 = 0xCBF2_9CE4_8422_2325

    init() {}

    @inline(__always)
    mutating func combine(_ byte: UInt8) {
        state ^= UInt64(byte)
        state &*= 0x0000_0100_0000_01B3
    }

    mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes { combine(byte) }
    }

    mutating func combine(_ text: String) {
        for byte in text.utf8 { combine(byte) }
    }

    /// The finalized hash of everything combined so far; the state itself is unchanged.
    var value: UInt64 {
        var k = state
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }

    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hasher = RingHash()
        hasher.combine(bytes)
        return hasher.value
    }
}

extension UnsafeBufferPointer<UInt64> {
    /// The first of these sorted ring points whose position is ≥ `hash`, wrapping to the first point
    /// past the end: twemproxy's `ketama_dispatch` (a lower-bound binary search). Shared by the shard
    /// router and the bounded-load picker.
    @inline(__always)
    func ringIndex(atOrAfter hash: UInt64) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = low + (high - low) / 2
            if self[middle] < hash {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low == count ? 0 : low
    }
}
