import NIOCore

/// One cached item: key and value in a single allocation, memcached's metadata, LRU links.
struct Item {
    /// The key, a slice of the item's own storage.
    var key: ByteBuffer
    /// The value, a slice of the same storage.
    var value: ByteBuffer
    var flags: UInt32
    /// Expiry in cache time (seconds since the clock's epoch); 0 means never.
    var exptime: UInt32
    /// Last access in cache time, updated as memcached's LRU bump does.
    var time: UInt32
    var cas: UInt64
    var state: State
    /// Bytes charged against the memory limit.
    var size: Int
    /// Neighbours in the LRU list, as slot indices (-1 for none).
    var newer: Int32 = -1
    var older: Int32 = -1

    struct State: OptionSet {
        var rawValue: UInt8
        /// Fetched at least once since it was stored (meta `h`).
        static let fetched = State(rawValue: 1 << 0)
        /// Fetched twice: memcached then starts updating the access time.
        static let active = State(rawValue: 1 << 1)
        /// Marked stale by `md … I` or an `ms … I` write with an older CAS.
        static let stale = State(rawValue: 1 << 2)
        /// A client already won the right to recache it (meta `W`, then `Z` for others).
        static let tokenSent = State(rawValue: 1 << 3)
        /// Stored through the meta protocol with a base64 (`b`) key: echoed back encoded.
        static let binaryKey = State(rawValue: 1 << 4)
    }

    /// Bytes charged per item beyond its key and value: the item record and its LRU links, the
    /// index entry, the storage object and malloc's rounding, with the slack of growing arrays.
    /// Measured: with 100-byte values RSS grows by about this much per item beyond key and
    /// value, 225 bytes at 1,000,000 items (`scripts/bench-memory.py`), 240 with the index's
    /// slack at its emptiest (Tests/python/test_memory_bound.py holds it to account).
    static let overhead = 240

    static func chargedSize(keyLength: Int, valueLength: Int) -> Int {
        keyLength + valueLength + overhead
    }

    /// Copies key and value into one fresh allocation, so the item retains no read buffer.
    init(key: ByteBuffer, valueParts: [ByteBuffer], flags: UInt32, exptime: UInt32, now: UInt32, cas: UInt64) {
        let valueLength = valueParts.reduce(0) { $0 + $1.readableBytes }
        var storage = ByteBufferAllocator().buffer(capacity: key.readableBytes + valueLength)
        storage.writeImmutableBuffer(key)
        for part in valueParts { storage.writeImmutableBuffer(part) }
        self.key = storage.getSlice(at: 0, length: key.readableBytes)!
        self.value = storage.getSlice(at: key.readableBytes, length: valueLength)!
        self.flags = flags
        self.exptime = exptime
        self.time = now
        self.cas = cas
        self.state = []
        self.size = Self.chargedSize(keyLength: key.readableBytes, valueLength: valueLength)
    }

    func isExpired(now: UInt32) -> Bool {
        exptime != 0 && exptime <= now
    }
}
