import FlotillaMemcache
import Logging
import NIOCore
import Synchronization

/// Whether each shard is up, shared by every event loop; and the keys whose writes a shard missed.
///
/// A shard is marked down after `failureLimit` consecutive failures (timeouts, refused or lost
/// connections) and stays down until a probe reaches it. It then *recovers*: it takes every write
/// of its keys again (so none can be missed after its hints are taken) but serves no read until
/// its hints are repaired; then it is up.
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
        /// Back from down: takes writes, serves no reads until its hints are repaired.
        var recovering = false
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
        let recovering = Atomic<Bool>(false)
    }

    private let flags: [Flag]
    /// Shards recovering now: while 0 (almost always), routing need not ask `isReadable`.
    private let recoveringCount = Atomic<Int>(0)
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

    /// Whether `shard` takes requests: up, or recovering (writes only).
    @inline(__always)
    func isLive(_ shard: Int) -> Bool {
        !flags[shard].down.load(ordering: .relaxed)
    }

    /// Whether some shard is recovering.
    @inline(__always)
    var anyRecovering: Bool {
        recoveringCount.load(ordering: .relaxed) != 0
    }

    /// Whether `shard` serves reads: up, and not recovering.
    @inline(__always)
    func isReadable(_ shard: Int) -> Bool {
        isLive(shard) && !flags[shard].recovering.load(ordering: .relaxed)
    }

    /// A request to `shard` was answered.
    func recordSuccess(_ shard: Int) {
        states.withLock { states in
            if states[shard].consecutiveFailures != 0 { states[shard].consecutiveFailures = 0 }
        }
    }

    /// A request to `shard` failed at the transport level (timeout, refused, lost connection).
    func recordFailure(_ shard: Int, reason: String) {
        let (markedDown, wasRecovering) = states.withLock { states -> (Bool, Bool) in
            states[shard].consecutiveFailures += 1
            guard !states[shard].down, states[shard].consecutiveFailures >= failureLimit else { return (false, false) }
            let wasRecovering = states[shard].recovering
            states[shard].down = true
            states[shard].recovering = false
            states[shard].downSince = .now()
            states[shard].markedDown += 1
            // Both flags change under the lock, so that a concurrent markUp cannot interleave.
            flags[shard].down.store(true, ordering: .relaxed)
            if wasRecovering {
                flags[shard].recovering.store(false, ordering: .relaxed)
                recoveringCount.subtract(1, ordering: .relaxed)
            }
            return (true, wasRecovering)
        }
        if markedDown {
            logger.warning(
                "shard down",
                metadata: [
                    "shard": "\(names[shard])", "reason": "\(reason)", "failures": "\(failureLimit)",
                    "recovering": "\(wasRecovering)",
                ]
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

    /// Hints of `shard` were taken and must be kept as lost: it is flushed before it serves again.
    func keepOverflowed(_ shard: Int) {
        states.withLock { states in states[shard].hintsOverflowed = true }
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

    /// Whether some hints of `shard` were dropped (queue full) since they were last taken.
    func hintsOverflowed(_ shard: Int) -> Bool {
        states.withLock { states in states[shard].hintsOverflowed }
    }

    /// The shard answered a probe: it takes writes again, and serves no reads until `markUp`.
    /// False when it is not down.
    func beginRecovery(_ shard: Int) -> Bool {
        let began = states.withLock { states -> Bool in
            guard states[shard].down, !states[shard].recovering else { return false }
            states[shard].down = false
            states[shard].recovering = true
            states[shard].consecutiveFailures = 0
            recoveringCount.add(1, ordering: .relaxed)
            flags[shard].recovering.store(true, ordering: .relaxed)
            flags[shard].down.store(false, ordering: .relaxed)
            return true
        }
        if began { logger.notice("shard recovering", metadata: ["shard": "\(names[shard])"]) }
        return began
    }

    /// The repair of a recovering shard failed: it is down again (and its writes hinted) until the
    /// next probe.
    func abortRecovery(_ shard: Int) {
        let aborted = states.withLock { states -> Bool in
            guard states[shard].recovering else { return false }
            states[shard].recovering = false
            states[shard].down = true
            flags[shard].down.store(true, ordering: .relaxed)
            flags[shard].recovering.store(false, ordering: .relaxed)
            recoveringCount.subtract(1, ordering: .relaxed)
            return true
        }
        if aborted { logger.warning("shard repair failed: down again", metadata: ["shard": "\(names[shard])"]) }
    }

    /// Whether `shard` is still recovering (not marked down again since `beginRecovery`).
    func isRecovering(_ shard: Int) -> Bool {
        states.withLock { states in states[shard].recovering }
    }

    /// The recovering shard's hints are repaired: it serves reads again. False when it was marked
    /// down again meanwhile.
    func markUp(_ shard: Int, replayed: Int) -> Bool {
        let up = states.withLock { states -> Bool in
            guard states[shard].recovering else { return false }
            states[shard].recovering = false
            states[shard].downSince = nil
            states[shard].hintsReplayed += UInt64(replayed)
            flags[shard].recovering.store(false, ordering: .relaxed)
            recoveringCount.subtract(1, ordering: .relaxed)
            return true
        }
        if up {
            logger.notice("shard up", metadata: ["shard": "\(names[shard])", "hints-replayed": "\(replayed)"])
        }
        return up
    }

    /// Hints of a shard that is up were repaired (a write had failed on it without marking it down).
    func recordRepaired(_ shard: Int, count: Int) {
        states.withLock { states in states[shard].hintsReplayed += UInt64(count) }
    }

    /// Per-shard figures for stats and the admin API.
    struct Snapshot: Sendable {
        var down: Bool
        /// Back from down, its hints being repaired: takes writes, serves no reads.
        var recovering: Bool
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
                    recovering: $0.recovering,
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
