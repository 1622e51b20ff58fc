import FlotillaMemcache
import NIOCore

/// memcached's item operations (`do_store_item`, `do_add_delta`, touch, delete) on one stripe.
extension ItemStore {
    /// The storage commands' modes, as the protocol module names them.
    typealias StoreMode = StorageRequest.Mode

    struct Write {
        var mode: StoreMode
        var key: ByteBuffer
        var data: ByteBuffer
        var flags: UInt32
        /// Expiry in cache time.
        var exptime: UInt32
        /// CAS unique to compare with; 0 for none.
        var compareCAS: UInt64 = 0
        /// `ms … C<cas> I`: a write with an older CAS is accepted and marks the item stale.
        var allowStale = false
        var binaryKey = false
    }

    enum StoreOutcome: Equatable {
        case stored(cas: UInt64)
        case notStored
        case exists
        case notFound
        case outOfMemory
    }

    mutating func store(_ write: Write, now: UInt32, nextCAS: () -> UInt64) -> StoreOutcome {
        guard let slot = find(write.key, now: now) else {
            switch write.mode {
            case .set, .add:
                return insert(write, parts: [write.data], flags: write.flags, exptime: write.exptime, now: now, nextCAS)
            case .cas:
                return .notFound
            case .replace, .append, .prepend:
                return .notStored
            }
        }
        let current = self[slot]
        enum CASCheck { case none, match, stale, mismatch }
        let check: CASCheck =
            if write.compareCAS == 0 {
                .none
            } else if write.compareCAS == current.cas {
                .match
            } else if write.allowStale, write.compareCAS < current.cas {
                .stale
            } else {
                .mismatch
            }
        switch write.mode {
        case .add:
            // add leaves the item alone but still promotes it in the LRU (not a fetch).
            moveToNewest(slot)
            return .notStored
        case .cas:
            switch check {
            case .match:
                return insert(write, parts: [write.data], flags: write.flags, exptime: write.exptime, now: now, nextCAS)
            case .stale:
                var state: Item.State = [.stale]
                if current.state.contains(.tokenSent) { state.insert(.tokenSent) }
                return insert(
                    write,
                    parts: [write.data],
                    flags: write.flags,
                    exptime: current.exptime,
                    now: now,
                    nextCAS,
                    state: state
                )
            case .none, .mismatch:
                return .exists
            }
        case .append, .prepend:
            guard check == .none || check == .match else { return .exists }
            // memcached cannot allocate a combined item over the size limit: NOT_STORED.
            let combinedLength = current.valueLength + write.data.readableBytes
            guard itemLimit.fits(keyLength: write.key.readableBytes, valueLength: combinedLength) else {
                return .notStored
            }
            let parts = write.mode == .append ? [current.value, write.data] : [write.data, current.value]
            // The combined item is a new allocation in memcached, which does not carry the
            // request's binary-key marker.
            var combined = write
            combined.binaryKey = false
            return insert(combined, parts: parts, flags: current.flags, exptime: current.exptime, now: now, nextCAS)
        case .replace, .set:
            return insert(write, parts: [write.data], flags: write.flags, exptime: write.exptime, now: now, nextCAS)
        }
    }

    private mutating func insert(
        _ write: Write,
        parts: [ByteBuffer],
        flags: UInt32,
        exptime: UInt32,
        now: UInt32,
        _ nextCAS: () -> UInt64,
        state: Item.State = []
    ) -> StoreOutcome {
        let cas = nextCAS()
        var item = Item(key: write.key, valueParts: parts, flags: flags, exptime: exptime, now: now, cas: cas)
        item.state = state
        if write.binaryKey { item.state.insert(.binaryKey) }
        guard link(item) != nil else { return .outOfMemory }
        return .stored(cas: cas)
    }

    /// Creates an empty placeholder item for meta `mg … N<ttl>` on a miss. Like memcached's,
    /// it does not remember that the key came in base64: `k` echoes it raw.
    mutating func vivify(_ key: ByteBuffer, exptime: UInt32, now: UInt32, cas: UInt64) -> Int32? {
        link(Item(key: key, valueParts: [], flags: 0, exptime: exptime, now: now, cas: cas))
    }

    /// Removes the live item for `key`; false when there is none.
    mutating func delete(_ key: ByteBuffer, now: UInt32) -> Bool {
        guard let slot = find(key, now: now) else { return false }
        unlink(slot)
        return true
    }

    /// Sets a new expiry on a live item and bumps it (touch, gat).
    mutating func touch(_ key: ByteBuffer, exptime: UInt32, now: UInt32) -> Int32? {
        guard let slot = find(key, now: now) else { return nil }
        self[slot].exptime = exptime
        bump(slot, now: now)
        return slot
    }

    enum DeltaOutcome: Equatable {
        /// The new value's decimal digits, and the item's slot.
        case updated(digits: [UInt8], slot: Int32)
        case notFound
        case nonNumeric
        case casMismatch
        case outOfMemory
    }

    /// memcached's `do_add_delta`: 64-bit unsigned arithmetic on a decimal value. Increments
    /// wrap, decrements stop at 0; a result no longer than the old value is written in place,
    /// padded with spaces as memcached does.
    mutating func addDelta(
        _ key: ByteBuffer,
        increment: Bool,
        delta: UInt64,
        compareCAS: UInt64,
        now: UInt32,
        nextCAS: () -> UInt64
    ) -> DeltaOutcome {
        guard let slot = find(key, now: now) else { return .notFound }
        let current = self[slot]
        guard current.value.readableBytes > 0 else { return .nonNumeric }
        if compareCAS != 0, current.cas != compareCAS { return .casMismatch }
        guard let value = MemcacheNumbers.itemValue(current.value) else { return .nonNumeric }
        let result = increment ? value &+ delta : (delta > value ? 0 : value - delta)
        let digits = Array(String(result).utf8)
        if digits.count <= current.value.readableBytes {
            var padded = ByteBuffer(bytes: digits)
            padded.writeRepeatingByte(UInt8(ascii: " "), count: current.value.readableBytes - digits.count)
            var replacement = Item(
                key: current.key,
                valueParts: [padded],
                flags: current.flags,
                exptime: current.exptime,
                now: current.time,
                cas: nextCAS()
            )
            replacement.state = current.state
            replacement.newer = current.newer
            replacement.older = current.older
            self[slot] = replacement
            return .updated(digits: digits, slot: slot)
        }
        let replacement = Item(
            key: current.key,
            valueParts: [ByteBuffer(bytes: digits)],
            flags: current.flags,
            exptime: current.exptime,
            now: now,
            cas: nextCAS()
        )
        guard let newSlot = link(replacement) else { return .outOfMemory }
        return .updated(digits: digits, slot: newSlot)
    }
}
