import FlotillaMemcache
import NIOCore
import Testing

@testable import FlotillaCache

/// The stripe's rules with an injected clock: no sleeps, no threads.
@Suite("Item store")
struct ItemStoreTests {
    final class CAS {
        var value: UInt64 = 0
        func next() -> UInt64 {
            value += 1
            return value
        }
    }

    func write(
        _ key: String,
        _ value: String,
        mode: ItemStore.StoreMode = .set,
        exptime: UInt32 = 0,
        cas: UInt64 = 0
    ) -> ItemStore.Write {
        ItemStore.Write(
            mode: mode,
            key: ByteBuffer(string: key),
            data: ByteBuffer(string: value),
            flags: 7,
            exptime: exptime,
            compareCAS: cas
        )
    }

    func value(_ store: inout ItemStore, _ key: String, now: UInt32 = 100) -> String? {
        store.find(ByteBuffer(string: key), now: now).map { String(buffer: store[$0].value) }
    }

    @Test func evictsLeastRecentlyUsedFirstAndStaysWithinBudget() {
        let itemSize = Item.chargedSize(keyLength: 2, valueLength: 10)
        var store = ItemStore(limitBytes: itemSize * 3)
        let cas = CAS()
        for key in ["k1", "k2", "k3"] {
            _ = store.store(write(key, "0123456789"), now: 100, nextCAS: cas.next)
        }
        // Touch k1 so that k2 is now the least recently used.
        if let slot = store.find(ByteBuffer(string: "k1"), now: 100) { store.bump(slot, now: 100) }
        _ = store.store(write("k4", "0123456789"), now: 100, nextCAS: cas.next)
        #expect(value(&store, "k2") == nil)
        #expect(value(&store, "k1") == "0123456789")
        #expect(store.counters.evictions == 1)
        #expect(store.usedBytes <= store.limitBytes)
    }

    @Test func refusesAnItemLargerThanTheStripe() {
        var store = ItemStore(limitBytes: 100)
        let outcome = store.store(write("k", String(repeating: "x", count: 200)), now: 100, nextCAS: CAS().next)
        #expect(outcome == .outOfMemory)
        #expect(store.count == 0)
    }

    @Test func countsWhatStatsItemsReportsAndResetsIt() {
        let itemSize = Item.chargedSize(keyLength: 2, valueLength: 10)
        var store = ItemStore(limitBytes: itemSize * 2)
        let cas = CAS()
        _ = store.store(write("k1", "0123456789", exptime: 500), now: 100, nextCAS: cas.next)
        _ = store.store(write("k2", "0123456789", exptime: 150), now: 110, nextCAS: cas.next)
        #expect(store.oldestAccess == 100)
        // k1 (with an expiry, last accessed at 100) is evicted at 130.
        _ = store.store(write("k3", "0123456789"), now: 130, nextCAS: cas.next)
        #expect(store.counters.evictions == 1)
        #expect(store.counters.evictedNonzero == 1)
        #expect(store.counters.evictedTime == 30)
        #expect(
            store.store(write("kk", String(repeating: "x", count: 500)), now: 130, nextCAS: cas.next) == .outOfMemory
        )
        #expect(store.counters.outOfMemory == 1)
        // At 200, k2 has expired: the crawler looks at both items and reclaims one.
        #expect(store.reclaimExpired(now: 200) == 1)
        #expect(store.counters.crawlerItemsChecked == 2)
        #expect(store.counters.crawlerReclaimed == 1)
        store.resetCounters()
        #expect(store.counters.evictions == 0 && store.counters.crawlerItemsChecked == 0)
        #expect(value(&store, "k3", now: 200) == "0123456789")
    }

    @Test func anItemRecordIsFortyEightBytes() {
        // docs/cache.md's memory figures count on it: a slot holds an optional item.
        #expect(MemoryLayout<Item?>.stride == 48)
    }

    @Test func expiryIsInCacheTime() {
        var store = ItemStore(limitBytes: 1 << 20)
        _ = store.store(write("k", "v", exptime: 110), now: 100, nextCAS: CAS().next)
        #expect(value(&store, "k", now: 109) == "v")
        #expect(value(&store, "k", now: 110) == nil)
        #expect(store.count == 0)
    }

    @Test func delayedFlushInvalidatesOlderItemsOnceDue() {
        var store = ItemStore(limitBytes: 1 << 20)
        let cas = CAS()
        _ = store.store(write("old", "v"), now: 100, nextCAS: cas.next)
        store.oldestLive = 104
        #expect(value(&store, "old", now: 103) == "v")
        _ = store.store(write("new", "v"), now: 105, nextCAS: cas.next)
        #expect(value(&store, "old", now: 105) == nil)
        #expect(value(&store, "new", now: 105) == "v")
    }

    @Test func storeModesFollowMemcached() {
        var store = ItemStore(limitBytes: 1 << 20)
        let cas = CAS()
        #expect(store.store(write("k", "a", mode: .replace), now: 100, nextCAS: cas.next) == .notStored)
        #expect(store.store(write("k", "a", mode: .append), now: 100, nextCAS: cas.next) == .notStored)
        #expect(store.store(write("k", "a", mode: .cas, cas: 1), now: 100, nextCAS: cas.next) == .notFound)
        #expect(store.store(write("k", "b", mode: .add), now: 100, nextCAS: cas.next) == .stored(cas: 1))
        #expect(store.store(write("k", "x", mode: .add), now: 100, nextCAS: cas.next) == .notStored)
        #expect(store.store(write("k", "c", mode: .append), now: 100, nextCAS: cas.next) == .stored(cas: 2))
        #expect(store.store(write("k", "a", mode: .prepend), now: 100, nextCAS: cas.next) == .stored(cas: 3))
        #expect(value(&store, "k") == "abc")
        #expect(store.store(write("k", "z", mode: .cas, cas: 2), now: 100, nextCAS: cas.next) == .exists)
        #expect(store.store(write("k", "z", mode: .cas, cas: 0), now: 100, nextCAS: cas.next) == .exists)
        #expect(store.store(write("k", "z", mode: .cas, cas: 3), now: 100, nextCAS: cas.next) == .stored(cas: 4))
        #expect(value(&store, "k") == "z")
    }

    @Test func appendPastTheItemSizeLimitIsNotStored() {
        var store = ItemStore(limitBytes: 1 << 20, maxItemSize: 1024)
        let cas = CAS()
        _ = store.store(write("k", String(repeating: "a", count: 900)), now: 100, nextCAS: cas.next)
        let outcome = store.store(
            write("k", String(repeating: "b", count: 200), mode: .append),
            now: 100,
            nextCAS: cas.next
        )
        #expect(outcome == .notStored)
        #expect(value(&store, "k")?.count == 900)
    }

    @Test func failedAddPromotesWithoutCountingAFetch() {
        var store = ItemStore(limitBytes: 1 << 20)
        let cas = CAS()
        _ = store.store(write("k", "a"), now: 100, nextCAS: cas.next)
        #expect(store.store(write("k", "b", mode: .add), now: 100, nextCAS: cas.next) == .notStored)
        let slot = store.find(ByteBuffer(string: "k"), now: 100)!
        #expect(!store[slot].state.contains(.fetched))
        #expect(store.newest == slot)
    }

    @Test func incrementWrapsAndDecrementStopsAtZeroPaddedInPlace() {
        var store = ItemStore(limitBytes: 1 << 20)
        let cas = CAS()
        _ = store.store(write("n", "100"), now: 100, nextCAS: cas.next)
        let key = ByteBuffer(string: "n")
        guard
            case .updated(let digits, _) = store.addDelta(
                key,
                increment: false,
                delta: 1,
                compareCAS: 0,
                now: 100,
                nextCAS: cas.next
            )
        else {
            Issue.record("expected an update")
            return
        }
        #expect(String(decoding: digits, as: UTF8.self) == "99")
        #expect(value(&store, "n") == "99 ")
        _ = store.store(write("n", "18446744073709551615"), now: 100, nextCAS: cas.next)
        _ = store.addDelta(key, increment: true, delta: 2, compareCAS: 0, now: 100, nextCAS: cas.next)
        #expect(value(&store, "n")?.hasPrefix("1 ") == true)
        _ = store.addDelta(key, increment: false, delta: 5, compareCAS: 0, now: 100, nextCAS: cas.next)
        #expect(value(&store, "n")?.hasPrefix("0 ") == true)
        _ = store.store(write("t", "abc"), now: 100, nextCAS: cas.next)
        #expect(
            store.addDelta(
                ByteBuffer(string: "t"),
                increment: true,
                delta: 1,
                compareCAS: 0,
                now: 100,
                nextCAS: cas.next
            ) == .nonNumeric
        )
    }
}
