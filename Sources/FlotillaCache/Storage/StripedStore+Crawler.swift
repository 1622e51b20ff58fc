import FlotillaMemcache
import NIOCore
import Synchronization

/// `lru_crawler metadump` and `lru_crawler crawl`: walks over every item, a bounded piece at a
/// time, each piece under one stripe's lock.
///
/// Items keep their slot from link to unlink, so a walk lists every item that lives from its
/// start to its end exactly once (as memcached's crawler, it promises nothing about items
/// stored or removed meanwhile).
extension StripedStore {
    /// Where a metadump stands: the next stripe and slot to visit.
    struct DumpCursor: Equatable {
        var stripe = 0
        var slot = 0
    }

    /// memcached's class id for every item: flotilla has no slab classes, so every item is
    /// reported in class 1 and a dump of other classes is empty.
    static let slabClass = 1

    /// Writes memcached's metadump line of each live item from `cursor` on, visiting at most
    /// `slots` slots; the cursor moves past what was visited. Returns true once every stripe
    /// has been walked.
    func metadump(from cursor: inout DumpCursor, slots limit: Int, into out: inout ByteBuffer) -> Bool {
        guard cursor.stripe < stripes.count else { return true }
        let now = clock.now
        let started = clock.processStarted
        let end = stripes[cursor.stripe].store.withLock { store -> Int in
            let end = min(store.slots.count, cursor.slot + limit)
            var slot = cursor.slot
            while slot < end {
                if let item = store.slots[slot], store.isLive(item, now: now) {
                    Self.writeMetadumpLine(item, processStarted: started, into: &out)
                }
                slot += 1
            }
            return store.slots.count > end ? end : -1
        }
        if end < 0 {
            cursor = DumpCursor(stripe: cursor.stripe + 1, slot: 0)
        } else {
            cursor.slot = end
        }
        return cursor.stripe >= stripes.count
    }

    /// `key=<uri-encoded> exp=<unix time or -1> la=<unix time> cas=<n> fetch=yes|no cls=1 size=<n>`
    /// and a bare newline, as memcached's `crawler_metadump_eval` writes it.
    static func writeMetadumpLine(_ item: Item, processStarted: Int64, into out: inout ByteBuffer) {
        out.writeStaticString("key=")
        item.withKeyBytes { key in
            for byte in key {
                if Self.isUnreserved(byte) {
                    out.writeInteger(byte)
                } else {
                    out.writeInteger(UInt8(ascii: "%"))
                    out.writeInteger(Self.hexDigits[Int(byte >> 4)])
                    out.writeInteger(Self.hexDigits[Int(byte & 0x0f)])
                }
            }
        }
        out.writeStaticString(" exp=")
        out.writeDecimal(item.exptime == 0 ? -1 : processStarted + Int64(item.exptime))
        out.writeStaticString(" la=")
        out.writeDecimal(processStarted + Int64(item.time))
        out.writeStaticString(" cas=")
        out.writeDecimal(item.cas)
        out.writeStaticString(item.state.contains(.fetched) ? " fetch=yes cls=" : " fetch=no cls=")
        out.writeDecimal(UInt64(slabClass))
        out.writeStaticString(" size=")
        out.writeDecimal(UInt64(item.size))
        out.writeInteger(UInt8(ascii: "\n"))
    }

    /// memcached's `uriencode` keeps letters, digits and `-._~`; every other byte is `%XX`.
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// `stats cachedump <class> <limit>`: `ITEM <key> [<value bytes> b; <expiry> s]` per live item
    /// (the expiry a Unix time, 0 for never), at most `limit` items (0: no limit) and at most
    /// memcached's 2 MiB of lines, then `END`.
    func cachedump(limit: Int, into out: inout ByteBuffer) {
        let stop = out.writerIndex + Self.cachedumpBytes
        let now = clock.now
        let started = clock.processStarted
        var listed = 0
        walk: for stripe in stripes {
            let full = stripe.store.withLock { store -> Bool in
                for case let item? in store.slots where store.isLive(item, now: now) {
                    if limit > 0, listed >= limit { return true }
                    guard out.writerIndex + Int(item.keyLength) + 48 <= stop else { return true }
                    out.writeStaticString("ITEM ")
                    item.withKeyBytes { _ = out.writeBytes($0) }
                    out.writeStaticString(" [")
                    out.writeDecimal(UInt64(item.valueLength))
                    out.writeStaticString(" b; ")
                    out.writeDecimal(item.exptime == 0 ? 0 : started + Int64(item.exptime))
                    out.writeStaticString(" s]\r\n")
                    listed += 1
                }
                return false
            }
            if full { break walk }
        }
        out.writeStaticString("END\r\n")
    }

    /// memcached's bound on a cachedump's reply.
    static let cachedumpBytes = 2 << 20

    /// `lru_crawler crawl`: reclaims expired and flushed items in every stripe now.
    @discardableResult
    func reclaimExpired() -> Int {
        let now = clock.now
        return stripes.reduce(0) { total, stripe in
            total + stripe.store.withLock { $0.reclaimExpired(now: now) }
        }
    }
}
