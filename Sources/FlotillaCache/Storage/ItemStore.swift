import FlotillaMemcache
import NIOCore

/// One stripe of the cache: a hash index, an LRU list and a memory budget.
///
/// A pure value type: no locks, no clock, no I/O. Time (`now`, in cache seconds) and CAS
/// uniques are passed in, so that every rule (expiry, flush, eviction, LRU bump) is tested
/// deterministically. `StripedStore` puts a lock around each stripe.
struct ItemStore {
    private var index = SlotIndex()
    private(set) var slots: [Item?] = []
    private var freeSlots: [Int32] = []
    /// Most recently used end of the LRU list.
    private(set) var newest: Int32 = -1
    /// Least recently used end: the next item to evict.
    private(set) var oldest: Int32 = -1

    /// Bytes charged against the budget.
    private(set) var usedBytes = 0
    let limitBytes: Int
    private(set) var counters = Counters()

    /// memcached's item counters (`stats`, `stats items`), zeroed by `stats reset`.
    struct Counters {
        var evictions: UInt64 = 0
        var evictedUnfetched: UInt64 = 0
        /// Evicted items that had an expiry time.
        var evictedNonzero: UInt64 = 0
        /// Seconds since the last access of the item evicted last.
        var evictedTime: UInt32 = 0
        var expiredUnfetched: UInt64 = 0
        var reclaimed: UInt64 = 0
        var totalItems: UInt64 = 0
        /// Items refused because they were larger than the whole stripe.
        var outOfMemory: UInt64 = 0
        /// Items `lru_crawler crawl` looked at, and reclaimed.
        var crawlerItemsChecked: UInt64 = 0
        var crawlerReclaimed: UInt64 = 0

        mutating func add(_ other: Counters) {
            evictions += other.evictions
            evictedUnfetched += other.evictedUnfetched
            evictedNonzero += other.evictedNonzero
            evictedTime = max(evictedTime, other.evictedTime)
            expiredUnfetched += other.expiredUnfetched
            reclaimed += other.reclaimed
            totalItems += other.totalItems
            outOfMemory += other.outOfMemory
            crawlerItemsChecked += other.crawlerItemsChecked
            crawlerReclaimed += other.crawlerReclaimed
        }
    }

    /// `stats reset`: the counters start again from zero (the items stay).
    mutating func resetCounters() {
        counters = Counters()
    }

    /// When the least recently used item was last accessed (cache seconds); nil when empty.
    var oldestAccess: UInt32? { oldest == -1 ? nil : self[oldest].time }

    /// memcached's flush marker: items last stored or bumped at or before `oldestLive` are
    /// invalid once `now` reaches it (0: no flush pending).
    var oldestLive: UInt32 = 0

    /// Largest item, measured as the decoder measures it.
    let itemLimit: ItemSizeLimit

    var maxItemSize: Int { itemLimit.maxItemSize }

    init(limitBytes: Int, maxItemSize: Int = 1 << 20) {
        self.limitBytes = limitBytes
        self.itemLimit = ItemSizeLimit(maxItemSize: maxItemSize)
    }

    var count: Int { index.count }

    /// The slot of `key`'s item, live or not.
    @inline(__always)
    private func lookup(_ key: ByteBuffer) -> Int32? {
        key.withUnsafeReadableBytes { lookup(keyBytes: $0) }
    }

    @inline(__always)
    private func lookup(keyBytes key: UnsafeRawBufferPointer) -> Int32? {
        index.find(hash: SlotIndex.hash(key)) { slots[Int($0)]!.hasKey(bytes: key) }
    }

    subscript(slot: Int32) -> Item {
        get { slots[Int(slot)]! }
        _modify { yield &slots[Int(slot)]! }
    }

    /// The live item for `key`: expired or flushed items are unlinked on the way, as memcached
    /// does lazily on access.
    mutating func find(_ key: ByteBuffer, now: UInt32) -> Int32? {
        guard let slot = lookup(key) else { return nil }
        let item = self[slot]
        if item.isExpired(now: now) || isFlushed(item, now: now) {
            if !item.state.contains(.fetched) { counters.expiredUnfetched += 1 }
            counters.reclaimed += 1
            unlink(slot)
            return nil
        }
        return slot
    }

    private func isFlushed(_ item: Item, now: UInt32) -> Bool {
        oldestLive != 0 && oldestLive <= now && item.time <= oldestLive
    }

    /// Whether a client can still read `item` (not expired, not flushed).
    func isLive(_ item: Item, now: UInt32) -> Bool {
        !item.isExpired(now: now) && !isFlushed(item, now: now)
    }

    /// `lru_crawler crawl`: unlinks every expired or flushed item now rather than when it is next
    /// looked up. Returns how many were reclaimed.
    @discardableResult
    mutating func reclaimExpired(now: UInt32) -> Int {
        var reclaimed = 0
        for slot in slots.indices {
            guard let item = slots[slot] else { continue }
            counters.crawlerItemsChecked += 1
            guard !isLive(item, now: now) else { continue }
            if !item.state.contains(.fetched) { counters.expiredUnfetched += 1 }
            counters.reclaimed += 1
            counters.crawlerReclaimed += 1
            unlink(Int32(slot))
            reclaimed += 1
        }
        return reclaimed
    }

    /// memcached's `do_item_bump`: the first fetch marks the item fetched, the next ones mark it
    /// active and refresh its access time; the item moves to the recently-used end.
    mutating func bump(_ slot: Int32, now: UInt32) {
        if !self[slot].state.contains(.active) {
            if !self[slot].state.contains(.fetched) {
                self[slot].state.insert(.fetched)
            } else {
                self[slot].state.insert(.active)
                self[slot].time = now
            }
        }
        moveToNewest(slot)
    }

    /// Links `item`, replacing any item under the same key and evicting least recently used
    /// items until it fits. Returns nil when the item is larger than the whole stripe.
    @discardableResult
    mutating func link(_ item: Item) -> Int32? {
        if let existing = item.withKeyBytes(lookup(keyBytes:)) { unlink(existing) }
        guard item.size <= limitBytes else {
            counters.outOfMemory += 1
            return nil
        }
        while usedBytes + item.size > limitBytes, oldest != -1 {
            let victim = oldest
            counters.evictions += 1
            if !self[victim].state.contains(.fetched) { counters.evictedUnfetched += 1 }
            if self[victim].exptime != 0 { counters.evictedNonzero += 1 }
            // The new item's time is now.
            counters.evictedTime = item.time &- min(item.time, self[victim].time)
            unlink(victim)
        }
        let slot: Int32
        if let free = freeSlots.popLast() {
            slot = free
            slots[Int(slot)] = item
        } else {
            slot = Int32(slots.count)
            slots.append(item)
        }
        index.insert(hash: item.withKeyBytes(SlotIndex.hash), slot: slot)
        usedBytes += item.size
        counters.totalItems += 1
        pushNewest(slot)
        return slot
    }

    /// Removes an item from the index, the LRU list and the budget.
    mutating func unlink(_ slot: Int32) {
        let item = self[slot]
        detach(slot)
        index.remove(hash: item.withKeyBytes(SlotIndex.hash), slot: slot)
        usedBytes -= item.size
        slots[Int(slot)] = nil
        freeSlots.append(slot)
    }

    /// Drops every item (an immediate `flush_all`) and gives the memory back.
    mutating func removeAll() {
        index.removeAll()
        slots = []
        freeSlots = []
        newest = -1
        oldest = -1
        usedBytes = 0
    }

    /// Moves an item to the recently-used end without marking it fetched (memcached's
    /// `do_item_update`, used when `add` finds the key taken).
    mutating func moveToNewest(_ slot: Int32) {
        guard newest != slot else { return }
        detach(slot)
        pushNewest(slot)
    }

    private mutating func pushNewest(_ slot: Int32) {
        self[slot].older = newest
        self[slot].newer = -1
        if newest != -1 { self[newest].newer = slot }
        newest = slot
        if oldest == -1 { oldest = slot }
    }

    private mutating func detach(_ slot: Int32) {
        let item = self[slot]
        if item.newer != -1 { self[item.newer].older = item.older } else { newest = item.older }
        if item.older != -1 { self[item.older].newer = item.newer } else { oldest = item.newer }
        self[slot].newer = -1
        self[slot].older = -1
    }
}
