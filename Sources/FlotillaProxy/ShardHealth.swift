import FlotillaMemcache
import Logging
import NIOCore
import Synchronization

/// Whether each shard is up, shared by every event loop; and the keys whose writes a shard missed.
///
/// A shard is marked down after `failureLimit` consecutive failures (timeouts, refused or lost
/// connections) and stays down until a probe reaches it and its hints are repaired.
///
/// A hint is a key, not a write: repairing it copies the key's current value from a replica that
/// has it (or deletes the key when none has), so hints can be repaired in any order and a write
/// that failed long ago can never overwrite a newer one.
public final class ShardHealth: Sendable {
    /// A key whose writes a shard missed.
    struct Hint: Sendable {
        var key: ByteBuffer
    }

    private struct State {
        var consecutiveFailures = 0
        var down = false
        var downSince: NIODeadline?
        var hints: [Hint] = []
        /// The keys in `hints`, so that a key written many times is repaired once.
        var hinted: Set<ByteBuffer> = []
        /// Hints were dropped (queue full): the shard's data cannot be trusted on return.
        var hintsOverflowed = false
        var hintsReplayed: UInt64 = 0
        var hintsDropped: UInt64 = 0
        var markedDown: UInt64 = 0
    }

    /// A flag per shard read on every routing decision, without a lock.
    private final class Flag: Sendable {
        let down = Atomic<Bool>(false)
    }

    private let flags: [Flag]
    private let states: Mutex<[State]>
    private let failureLimit: Int
    private let maxHints: Int
    private let logger: Logger
    private let names: [String]

    init(shardNames: [String], failureLimit: Int, maxHints: Int, logger: Logger) {
        self.names = shardNames
        self.flags = shardNames.map { _ in Flag() }
        self.states = Mutex(Array(repeating: State(), count: shardNames.count))
        self.failureLimit = failureLimit
        self.maxHints = maxHints
        self.logger = logger
    }

    var count: Int { flags.count }

    @inline(__always)
    func isLive(_ shard: Int) -> Bool {
        !flags[shard].down.load(ordering: .relaxed)
    }

    /// A request to `shard` was answered.
    func recordSuccess(_ shard: Int) {
        states.withLock { states in
            if states[shard].consecutiveFailures != 0 { states[shard].consecutiveFailures = 0 }
        }
    }

    /// A request to `shard` failed at the transport level (timeout, refused, lost connection).
    func recordFailure(_ shard: Int, reason: String) {
        let markedDown = states.withLock { states -> Bool in
            states[shard].consecutiveFailures += 1
            guard !states[shard].down, states[shard].consecutiveFailures >= failureLimit else { return false }
            states[shard].down = true
            states[shard].downSince = .now()
            states[shard].markedDown += 1
            return true
        }
        if markedDown {
            flags[shard].down.store(true, ordering: .relaxed)
            logger.warning(
                "shard down",
                metadata: ["shard": "\(names[shard])", "reason": "\(reason)", "failures": "\(failureLimit)"]
            )
        }
    }

    /// Remembers that `shard` missed a write of `key`. When the queue is full the key is not kept
    /// and the shard is marked as having lost hints: it is flushed before it serves again.
    func addHint(_ shard: Int, key: ByteBuffer) {
        states.withLock { states in
            guard !states[shard].hinted.contains(key) else { return }
            guard states[shard].hints.count < maxHints else {
                states[shard].hintsOverflowed = true
                states[shard].hintsDropped += 1
                return
            }
            let owned = ByteBuffer(buffer: key)
            states[shard].hinted.insert(owned)
            states[shard].hints.append(Hint(key: owned))
        }
    }

    /// Shards with hints waiting (up or down).
    func shardsWithHints() -> [Int] {
        states.withLock { states in states.indices.filter { !states[$0].hints.isEmpty || states[$0].hintsOverflowed } }
    }

    /// Shards marked down now.
    func downShards() -> [Int] {
        (0..<flags.count).filter { !isLive($0) }
    }

    /// Takes the hints of a shard about to return (and whether some were lost).
    func takeHints(_ shard: Int) -> (hints: [Hint], overflowed: Bool) {
        states.withLock { states in
            let taken = (states[shard].hints, states[shard].hintsOverflowed)
            states[shard].hints = []
            states[shard].hinted = []
            states[shard].hintsOverflowed = false
            return taken
        }
    }

    /// The shard answered a probe and its hints are repaired: it serves again.
    func markUp(_ shard: Int, replayed: Int) {
        states.withLock { states in
            states[shard].down = false
            states[shard].consecutiveFailures = 0
            states[shard].downSince = nil
            states[shard].hintsReplayed += UInt64(replayed)
        }
        flags[shard].down.store(false, ordering: .relaxed)
        logger.notice("shard up", metadata: ["shard": "\(names[shard])", "hints-replayed": "\(replayed)"])
    }

    /// Hints of a shard that is up were repaired (a write had failed on it without marking it down).
    func recordRepaired(_ shard: Int, count: Int) {
        states.withLock { states in states[shard].hintsReplayed += UInt64(count) }
    }

    /// Per-shard figures for stats and the admin API.
    struct Snapshot: Sendable {
        var down: Bool
        var consecutiveFailures: Int
        var pendingHints: Int
        var hintsReplayed: UInt64
        var hintsDropped: UInt64
        var markedDown: UInt64
    }

    func snapshot() -> [Snapshot] {
        states.withLock { states in
            states.map {
                Snapshot(
                    down: $0.down,
                    consecutiveFailures: $0.consecutiveFailures,
                    pendingHints: $0.hints.count,
                    hintsReplayed: $0.hintsReplayed,
                    hintsDropped: $0.hintsDropped,
                    markedDown: $0.markedDown
                )
            }
        }
    }
}
