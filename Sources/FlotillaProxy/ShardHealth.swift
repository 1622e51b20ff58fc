import Logging
import NIOCore
import Synchronization

/// Whether each shard is up, shared by every event loop; and the writes a down shard missed.
///
/// A shard is marked down after `failureLimit` consecutive failures (timeouts, refused or lost
/// connections) and stays down until a probe reaches it and its hints are replayed.
public final class ShardHealth: Sendable {
    /// One write a down shard missed, to replay in order when it returns.
    struct Hint: Sendable {
        var request: ByteBuffer
    }

    private struct State {
        var consecutiveFailures = 0
        var down = false
        var downSince: NIODeadline?
        var hints: [Hint] = []
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

    /// Keeps a write for a down shard; the oldest is dropped when the queue is full.
    func addHint(_ shard: Int, request: ByteBuffer) {
        states.withLock { states in
            if states[shard].hints.count >= maxHints {
                states[shard].hints.removeFirst()
                states[shard].hintsOverflowed = true
                states[shard].hintsDropped += 1
            }
            states[shard].hints.append(Hint(request: request))
        }
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
            states[shard].hintsOverflowed = false
            return taken
        }
    }

    /// The shard answered a probe and its hints are replayed: it serves again.
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
