import NIOCore
import Synchronization

/// The cache's storage: independent `ItemStore` stripes, each behind its own lock, so that
/// event loops on different cores rarely wait for each other.
final class StripedStore: Sendable {
    final class Stripe: Sendable {
        let store: Mutex<ItemStore>
        init(limitBytes: Int, maxItemSize: Int) {
            self.store = Mutex(ItemStore(limitBytes: limitBytes, maxItemSize: maxItemSize))
        }
    }

    let stripes: [Stripe]
    let limitBytes: Int
    let clock: CacheClock
    private let mask: Int
    private let casCounter = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - limitBytes: the memory budget, split evenly over the stripes.
    ///   - maxItemSize: the largest item; stripes are kept at least four items large.
    init(limitBytes: Int, maxItemSize: Int, clock: CacheClock = CacheClock()) {
        var count = 64
        while count > 1, limitBytes / count < maxItemSize * 4 { count /= 2 }
        self.stripes = (0..<count).map { _ in Stripe(limitBytes: limitBytes / count, maxItemSize: maxItemSize) }
        self.mask = count - 1
        self.limitBytes = limitBytes
        self.clock = clock
    }

    func nextCAS() -> UInt64 {
        casCounter.add(1, ordering: .relaxed).newValue
    }

    /// Runs `body` with exclusive access to the stripe that holds `key`.
    @inline(__always)
    func withStripe<R>(for key: ByteBuffer, _ body: (inout ItemStore) -> R) -> R {
        stripes[Self.stripeHash(key) & mask].store.withLock { body(&$0) }
    }

    /// FNV-1a: cheap, and independent of the index's own hashing.
    @inline(__always)
    static func stripeHash(_ key: ByteBuffer) -> Int {
        key.withUnsafeReadableBytes { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            return Int(truncatingIfNeeded: hash >> 7)
        }
    }

    /// `flush_all`: immediately (drop everything) or at a later cache time.
    func flush(oldestLive: UInt32, immediately: Bool) {
        for stripe in stripes {
            stripe.store.withLock { store in
                if immediately { store.removeAll() }
                store.oldestLive = oldestLive
            }
        }
    }

    struct Totals {
        var items = 0
        var bytes = 0
        var counters = ItemStore.Counters()
        /// When the least recently used item of any stripe was last accessed; nil when empty.
        var oldestAccess: UInt32?
    }

    func totals() -> Totals {
        var totals = Totals()
        for stripe in stripes {
            stripe.store.withLock { store in
                totals.items += store.count
                totals.bytes += store.usedBytes
                totals.counters.add(store.counters)
                if let access = store.oldestAccess { totals.oldestAccess = min(totals.oldestAccess ?? access, access) }
            }
        }
        return totals
    }

    /// `stats reset`: every stripe's counters start again from zero.
    func resetCounters() {
        for stripe in stripes { stripe.store.withLock { $0.resetCounters() } }
    }
}
