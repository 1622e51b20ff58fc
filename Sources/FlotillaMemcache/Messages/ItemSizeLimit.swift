/// memcached's item size rule, shared by the request decoder (a value too large is refused as it
/// arrives) and the cache's store (an append that would grow an item past it is not stored).
public struct ItemSizeLimit: Sendable, Hashable {
    /// Largest item, key and value and per-item header included (memcached `-I`, default 1 MiB).
    public var maxItemSize: Int

    /// Bytes memcached's item header adds to key and value when it checks the size limit.
    public static let itemHeaderSize = 56

    public init(maxItemSize: Int = 1 << 20) {
        self.maxItemSize = maxItemSize
    }

    /// Whether a value of `valueLength` bytes under a key of `keyLength` bytes fits an item (the
    /// value's `\r\n` and the key's terminator included, as memcached counts them).
    public func fits(keyLength: Int, valueLength: Int) -> Bool {
        Self.itemHeaderSize + keyLength + 1 + valueLength + 2 <= maxItemSize
    }
}
