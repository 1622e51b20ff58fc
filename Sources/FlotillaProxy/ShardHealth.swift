import FlotillaCore
import Logging
import NIOCore
import Synchronization

/// Whether each shard is up, shared by every event loop; and the keys whose writes a shard missed.
///
/// The decisions are `UpstreamHealth`'s (FlotillaCore), taken under a lock: a shard is marked down
/// after `failureLimit` consecutive failures (timeouts, refused or lost connections) and stays down
/// until a probe reaches it. It then *recovers*: it takes every write of its keys again (so none can
/// be missed after its hints are taken) but serves no read until its hints are repaired
/// (`ShardRepairer`); then it is up. The result is published, under the same lock, as one flag pair
/// per shard that routing reads on every request without a lock.
///
/// A hint is a key, not a write: repairing it copies the key's current value from a replica that
/// has it (or deletes the key when none has), so hints can be repaired in any order and a write
/// that failed long ago can never overwrite a newer one.
final class ShardHealth: Sendable {
    /// A key whose writes a shard missed.
    struct Hint: Sendable {
        var key: ByteBuffer
    }

    /// The keys one shard missed.
    private struct HintQueue {
        var hints: [Hint] = []
        /// The keys in `hints`, so that a key written many times is repaired once.
        var hinted: Set<ByteBuffer> = []
        /// Hints were dropped (queue full): the shard's data cannot be trusted on return.
        var overflowed = false
        var replayed: UInt64 = 0
        var dropped: UInt64 = 0
    }

    private struct State {
        var machine: UpstreamHealth
        var queues: [HintQueue]
    }

    /// A flag per shard read on every routing decision, without a lock.
    private final class Flag: Sendable {
        let down = Atomic<Bool>(false)
        let recovering = Atomic<Bool>(false)
        /// A failure was counted since the last success: only then does a success take the lock.
        let failing = Atomic<Bool>(false)
    }

    private let flags: [Flag]
    /// Whether some shard recovers now: while not (almost always), routing need not ask `isReadable`.
    private let someRecovering = Atomic<Bool>(false)
    private let state: Mutex<State>
    private let maxHints: Int
    private let failureLimit: Int
    private let logger: Logger
    private let names: [String]

    init(shardNames: [String], failureLimit: Int, maxHints: Int, logger: Logger) {
        self.names = shardNames
        self.flags = shardNames.map { _ in Flag() }
        let configuration = UpstreamHealth.Configuration(
            failureLimit: failureLimit,
            probeBackoff: RetryBackoff(initial: .milliseconds(100), maximum: .seconds(2)),
            repairsBeforeServing: true
        )
        self.state = Mutex(
            State(
                machine: UpstreamHealth(count: shardNames.count, configuration: configuration),
                queues: Array(repeating: HintQueue(), count: shardNames.count)
            )
        )
        self.maxHints = maxHints
        self.failureLimit = failureLimit
        self.logger = logger
    }

    var count: Int { flags.count }

    // MARK: Routing (no lock)

    /// Whether `shard` takes requests: up, or recovering (writes only).
    @inline(__always)
    func isLive(_ shard: Int) -> Bool {
        !flags[shard].down.load(ordering: .relaxed)
    }

    /// Whether some shard is recovering.
    @inline(__always)
    var anyRecovering: Bool {
        someRecovering.load(ordering: .relaxed)
    }

    /// Whether `shard` serves reads: up, and not recovering.
    @inline(__always)
    func isReadable(_ shard: Int) -> Bool {
        isLive(shard) && !flags[shard].recovering.load(ordering: .relaxed)
    }

    // MARK: Events

    /// A request to `shard` was answered. On every reply's path: the lock is taken only when a
    /// failure was counted since the last success (a failure on another event loop racing this
    /// reply counts as after it).
    @inline(__always)
    func recordSuccess(_ shard: Int) {
        guard flags[shard].failing.load(ordering: .relaxed) else { return }
        state.withLock { state in
            state.machine.onSuccess(shard)
            flags[shard].failing.store(false, ordering: .relaxed)
        }
    }

    /// A request to `shard` failed at the transport level (timeout, refused, lost connection).
    func recordFailure(_ shard: Int, reason: String) {
        let (actions, wasRecovering) = decide(shard) { machine -> [UpstreamHealth.Action] in
            flags[shard].failing.store(true, ordering: .relaxed)
            return machine.onFailure(shard, reason: reason, now: .now)
        }
        guard actions.contains(where: { if case .markedDown = $0 { true } else { false } }) else { return }
        logger.warning(
            "shard down",
            metadata: [
                "shard": "\(names[shard])", "reason": "\(reason)", "failures": "\(failureLimit)",
                "recovering": "\(wasRecovering)",
            ]
        )
    }

    /// A shard that did not answer the proxy's first probe at start: down at once (no client
    /// request need find it first), and probed from now on like any down shard.
    func markUnreachable(_ shard: Int, reason: String) {
        for _ in 0..<failureLimit where isLive(shard) {
            recordFailure(shard, reason: reason)
        }
    }

    /// The down shards whose probe is due now; each is returned once, until `probed` reports it.
    func dueProbes() -> [Int] {
        state.withLock { state in
            state.machine.onTick(now: .now).compactMap { action in
                if case .probe(let shard) = action { shard } else { nil }
            }
        }
    }

    /// The probe of a down shard ended. When it answered, the shard takes writes again and serves
    /// no reads until `markUp` (true: the repair begins); when it did not, the next probe waits.
    func probed(_ shard: Int, answered: Bool) -> Bool {
        let (actions, _) = decide(shard) { machine in
            machine.onProbe(shard, succeeded: answered, now: .now, random: Double.random(in: 0..<1))
        }
        guard actions.contains(.beginRecovery(shard)) else { return false }
        logger.notice("shard recovering", metadata: ["shard": "\(names[shard])"])
        return true
    }

    /// The shard that is up restarted (a new process, empty): true when it now recovers (takes
    /// writes, serves no reads) until its rebuild ends with `markUp`.
    func restarted(_ shard: Int) -> Bool {
        let (actions, _) = decide(shard) { machine in machine.onRestarted(shard, now: .now) }
        return actions.contains(.beginRecovery(shard))
    }

    /// The repair of a recovering shard failed: it is down again (and its writes hinted) until the
    /// next probe.
    func abortRecovery(_ shard: Int) {
        let (actions, _) = decide(shard) { machine in
            machine.onRepairFailed(shard, now: .now, random: Double.random(in: 0..<1))
        }
        if !actions.isEmpty {
            logger.warning("shard repair failed: down again", metadata: ["shard": "\(names[shard])"])
        }
    }

    /// Whether `shard` is still recovering (not marked down again since its probe answered).
    func isRecovering(_ shard: Int) -> Bool {
        state.withLock { $0.machine.state(of: shard).isRecovering }
    }

    /// The recovering shard's hints are repaired: it serves reads again. False when it was marked
    /// down again meanwhile.
    func markUp(_ shard: Int, replayed: Int) -> Bool {
        let (actions, _) = decide(shard) { machine in machine.onRepaired(shard) }
        guard actions.contains(.markedUp(shard)) else { return false }
        state.withLock { $0.queues[shard].replayed += UInt64(replayed) }
        logger.notice("shard up", metadata: ["shard": "\(names[shard])", "hints-replayed": "\(replayed)"])
        return true
    }

    /// Runs `event` on the machine and publishes the shard's flags, under the lock, so that two
    /// events cannot interleave their flag changes. Returns the actions and whether the shard was
    /// recovering before.
    private func decide(
        _ shard: Int,
        _ event: (inout UpstreamHealth) -> [UpstreamHealth.Action]
    ) -> (actions: [UpstreamHealth.Action], wasRecovering: Bool) {
        state.withLock { state in
            let wasRecovering = state.machine.state(of: shard).isRecovering
            let actions = event(&state.machine)
            guard !actions.isEmpty else { return (actions, wasRecovering) }
            let now = state.machine.state(of: shard)
            flags[shard].down.store(now.isDown, ordering: .relaxed)
            flags[shard].recovering.store(now.isRecovering, ordering: .relaxed)
            someRecovering.store(state.machine.anyRecovering, ordering: .relaxed)
            return (actions, wasRecovering)
        }
    }

    // MARK: Hints

    /// Remembers that `shard` missed a write of `key`. When the queue is full the key is not kept
    /// and the shard is marked as having lost hints: it is flushed before it serves again.
    func addHint(_ shard: Int, key: ByteBuffer) {
        state.withLock { state in
            guard !state.queues[shard].hinted.contains(key) else { return }
            guard state.queues[shard].hints.count < maxHints else {
                state.queues[shard].overflowed = true
                state.queues[shard].dropped += 1
                return
            }
            let owned = ByteBuffer(buffer: key)
            state.queues[shard].hinted.insert(owned)
            state.queues[shard].hints.append(Hint(key: owned))
        }
    }

    /// Hints of `shard` were taken and must be kept as lost: it is flushed before it serves again.
    func keepOverflowed(_ shard: Int) {
        state.withLock { $0.queues[shard].overflowed = true }
    }

    /// Shards with hints waiting (up or down).
    func shardsWithHints() -> [Int] {
        state.withLock { state in
            state.queues.indices.filter { !state.queues[$0].hints.isEmpty || state.queues[$0].overflowed }
        }
    }

    /// Takes the hints of a shard about to return (and whether some were lost).
    func takeHints(_ shard: Int) -> (hints: [Hint], overflowed: Bool) {
        state.withLock { state in
            let taken = (state.queues[shard].hints, state.queues[shard].overflowed)
            state.queues[shard].hints = []
            state.queues[shard].hinted = []
            state.queues[shard].overflowed = false
            return taken
        }
    }

    /// Whether some hints of `shard` were dropped (queue full) since they were last taken.
    func hintsOverflowed(_ shard: Int) -> Bool {
        state.withLock { $0.queues[shard].overflowed }
    }

    /// Hints of a shard that is up were repaired (a write had failed on it without marking it down).
    func recordRepaired(_ shard: Int, count: Int) {
        state.withLock { $0.queues[shard].replayed += UInt64(count) }
    }

    // MARK: Figures

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
        state.withLock { state in
            zip(state.machine.snapshots(), state.queues).map { upstream, queue in
                Snapshot(
                    down: upstream.state.isDown,
                    recovering: upstream.state.isRecovering,
                    consecutiveFailures: upstream.consecutiveFailures,
                    pendingHints: queue.hints.count,
                    hintsReplayed: queue.replayed,
                    hintsDropped: queue.dropped,
                    markedDown: UInt64(upstream.timesMarkedDown)
                )
            }
        }
    }
}
