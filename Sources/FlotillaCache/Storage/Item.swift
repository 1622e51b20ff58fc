import FlotillaMemcache
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One cached item: key and value in a single allocation, memcached's metadata, LRU links.
/// Fields are ordered largest first, so that the record is 48 bytes.
struct Item {
    /// Key then value, in an array of exactly their size: a `ByteBuffer` would round its
    /// allocation up to a power of two and add an object of its own (about 80 bytes an item).
    private(set) var storage: [UInt8]
    var cas: UInt64
    /// Bytes charged against the memory limit.
    var size: Int
    var flags: UInt32
    /// Expiry in cache time (seconds since the clock's epoch); 0 means never.
    var exptime: UInt32
    /// Last access in cache time, updated as memcached's LRU bump does.
    var time: UInt32
    /// Neighbours in the LRU list, as slot indices (-1 for none).
    var newer: Int32 = -1
    var older: Int32 = -1
    /// Keys are at most 250 bytes.
    let keyLength: UInt8
    var state: State

    /// The key, copied into a buffer of its own (off the request path: meta replies, dumps).
    var key: ByteBuffer { ByteBuffer(bytes: storage[..<Int(keyLength)]) }
    /// The value, copied into a buffer of its own (append, prepend, incr, decr, meta replies).
    var value: ByteBuffer { ByteBuffer(bytes: storage[Int(keyLength)...]) }
    var valueLength: Int { storage.count - Int(keyLength) }

    /// The key's bytes, in place.
    @inline(__always)
    func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<Int(keyLength)])) }
    }

    /// Whether `other` is this item's key, compared in place.
    @inline(__always)
    func hasKey(bytes other: UnsafeRawBufferPointer) -> Bool {
        guard other.count == Int(keyLength) else { return false }
        return withKeyBytes { mine in
            other.isEmpty || memcmp(mine.baseAddress!, other.baseAddress!, other.count) == 0
        }
    }

    /// Writes the item as a retrieval's hit (`VALUE` line, value, CRLF), copied from its storage.
    @inline(__always)
    func writeValueBlock(cas: UInt64?, into out: inout ByteBuffer) {
        storage.withUnsafeBytes { bytes in
            let split = Int(self.keyLength)
            out.writeValueBlock(
                key: UnsafeRawBufferPointer(rebasing: bytes[..<split]),
                value: UnsafeRawBufferPointer(rebasing: bytes[split...]),
                flags: flags,
                cas: cas
            )
        }
    }

    /// Writes the value, copied from the item's storage.
    @inline(__always)
    func writeValue(into out: inout ByteBuffer) {
        storage.withUnsafeBytes { bytes in
            _ = out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[Int(keyLength)...]))
        }
    }

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
    /// value, 114 bytes at 1,000,000 items (`scripts/bench-memory.py`), 128 with the index's
    /// slack at its emptiest (Tests/python/test_memory_bound.py holds it to account).
    static let overhead = 128

    static func chargedSize(keyLength: Int, valueLength: Int) -> Int {
        keyLength + valueLength + overhead
    }

    /// Copies key and value into one fresh allocation, so the item retains no read buffer.
    init(key: ByteBuffer, valueParts: [ByteBuffer], flags: UInt32, exptime: UInt32, now: UInt32, cas: UInt64) {
        precondition(key.readableBytes <= Int(UInt8.max), "keys are at most 250 bytes")
        let valueLength = valueParts.reduce(0) { $0 + $1.readableBytes }
        self.storage = [UInt8](unsafeUninitializedCapacity: key.readableBytes + valueLength) { bytes, count in
            count = 0
            for part in CollectionOfOne(key) + valueParts {
                part.withUnsafeReadableBytes { source in
                    guard let base = source.baseAddress, !source.isEmpty else { return }
                    UnsafeMutableRawPointer(bytes.baseAddress! + count).copyMemory(from: base, byteCount: source.count)
                    count += source.count
                }
            }
        }
        self.keyLength = UInt8(key.readableBytes)
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
