import Synchronization

/// memcached's command counters, under their `stats` names.
enum CacheCounter: Int, CaseIterable {
    case cmdGet, getHits, getMisses, getExpired, getFlushed
    case cmdSet, cmdFlush, cmdTouch, touchHits, touchMisses, cmdMeta
    case deleteHits, deleteMisses, incrHits, incrMisses, decrHits, decrMisses
    case casHits, casMisses, casBadval, storeTooLarge, storeNoMemory
    case bytesRead, bytesWritten

    var statName: String {
        switch self {
        case .cmdGet: "cmd_get"
        case .getHits: "get_hits"
        case .getMisses: "get_misses"
        case .getExpired: "get_expired"
        case .getFlushed: "get_flushed"
        case .cmdSet: "cmd_set"
        case .cmdFlush: "cmd_flush"
        case .cmdTouch: "cmd_touch"
        case .touchHits: "touch_hits"
        case .touchMisses: "touch_misses"
        case .cmdMeta: "cmd_meta"
        case .deleteHits: "delete_hits"
        case .deleteMisses: "delete_misses"
        case .incrHits: "incr_hits"
        case .incrMisses: "incr_misses"
        case .decrHits: "decr_hits"
        case .decrMisses: "decr_misses"
        case .casHits: "cas_hits"
        case .casMisses: "cas_misses"
        case .casBadval: "cas_badval"
        case .storeTooLarge: "store_too_large"
        case .storeNoMemory: "store_no_memory"
        case .bytesRead: "bytes_read"
        case .bytesWritten: "bytes_written"
        }
    }
}

/// Counters a connection accumulates without synchronisation and adds to the shared totals
/// once per read batch (and before answering `stats`), so the hot path takes no lock for them.
struct CacheCounterBatch {
    var values = [UInt64](repeating: 0, count: CacheCounter.allCases.count)
    var isEmpty = true
    /// The totals shard this connection commits to.
    var shard = 0

    @inline(__always)
    mutating func add(_ counter: CacheCounter, _ amount: UInt64 = 1) {
        values[counter.rawValue] &+= amount
        isEmpty = false
    }
}

/// The process-wide totals, in independently locked shards so that connections on different
/// event loops do not wait for each other when they commit their batches.
final class CacheCounterTotals: Sendable {
    private static let shardCount = 16
    private let shards: [Shard]
    private let nextShard = Atomic<Int>(0)

    private final class Shard: Sendable {
        let values = Mutex([UInt64](repeating: 0, count: CacheCounter.allCases.count))
    }

    init() {
        self.shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    /// A shard index for a new connection, handed out round robin.
    func assignShard() -> Int {
        nextShard.add(1, ordering: .relaxed).oldValue % Self.shardCount
    }

    /// `stats reset`: every counter starts again from zero.
    func reset() {
        for shard in shards { shard.values.withLock { $0 = [UInt64](repeating: 0, count: $0.count) } }
    }

    func commit(_ batch: inout CacheCounterBatch) {
        guard !batch.isEmpty else { return }
        shards[batch.shard].values.withLock { values in
            for index in values.indices { values[index] &+= batch.values[index] }
        }
        for index in batch.values.indices { batch.values[index] = 0 }
        batch.isEmpty = true
    }

    subscript(_ counter: CacheCounter) -> UInt64 {
        shards.reduce(0) { sum, shard in sum &+ shard.values.withLock { $0[counter.rawValue] } }
    }
}
