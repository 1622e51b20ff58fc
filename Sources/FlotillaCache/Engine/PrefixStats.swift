import NIOCore
import Synchronization

/// `stats detail on|off|dump`: memcached's per-prefix counts of gets, hits, sets and deletes by
/// the text commands (memcached 1.6 does not count meta commands).
/// A key's prefix is what comes before its first `:` (memcached's default `-D` delimiter); keys
/// without one are not counted, as memcached does. Off by default: then the only cost on the
/// request path is one relaxed atomic load.
final class PrefixStats: Sendable {
    static let delimiter = UInt8(ascii: ":")
    /// Prefixes kept at most, so that a client cannot grow the table without bound (memcached's
    /// own table is unbounded); counts for later prefixes are dropped.
    static let maximumPrefixes = 10_000

    struct Counts {
        var gets: UInt64 = 0
        var hits: UInt64 = 0
        var sets: UInt64 = 0
        var deletes: UInt64 = 0
    }

    enum Event {
        case get(hit: Bool)
        case set
        case delete
    }

    private let enabled = Atomic<Bool>(false)
    /// Counts by prefix, and the prefixes in the order they were first seen (the dump's order).
    private let table = Mutex<(counts: [String: Counts], order: [String])>(([:], []))

    var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    func setEnabled(_ on: Bool) {
        enabled.store(on, ordering: .relaxed)
    }

    /// Counts `event` for `key`'s prefix, when detail is on and the key has one.
    @inline(__always)
    func record(_ key: ByteBuffer, _ event: Event) {
        guard isEnabled else { return }
        recordSlow(key, event)
    }

    private func recordSlow(_ key: ByteBuffer, _ event: Event) {
        guard let end = key.readableBytesView.firstIndex(of: Self.delimiter) else { return }
        let prefix = String(decoding: key.readableBytesView[..<end], as: UTF8.self)
        table.withLock { table in
            if table.counts[prefix] == nil {
                guard table.order.count < Self.maximumPrefixes else { return }
                table.counts[prefix] = Counts()
                table.order.append(prefix)
            }
            switch event {
            case .get(let hit):
                table.counts[prefix]!.gets += 1
                if hit { table.counts[prefix]!.hits += 1 }
            case .set:
                table.counts[prefix]!.sets += 1
            case .delete:
                table.counts[prefix]!.deletes += 1
            }
        }
    }

    /// `stats detail dump`: one `PREFIX` line a prefix, then `END`.
    func dump(into out: inout ByteBuffer) {
        table.withLock { table in
            for prefix in table.order {
                let counts = table.counts[prefix]!
                out.writeString(
                    "PREFIX \(prefix) get \(counts.gets) hit \(counts.hits) set \(counts.sets) del \(counts.deletes)\r\n"
                )
            }
        }
        out.writeStaticString("END\r\n")
    }

    /// `stats reset` forgets every prefix, as memcached's does.
    func reset() {
        table.withLock { $0 = ([:], []) }
    }
}
