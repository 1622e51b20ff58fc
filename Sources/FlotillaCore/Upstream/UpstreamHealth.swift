/// Whether each of N upstreams takes requests: the pure health machine behind the cache proxy's shards, the load
/// balancer's backends and the search root's replicas (STYLE.md rule 1).
///
/// An upstream is marked down after `failureLimit` consecutive transport failures (timeouts, refused or lost
/// connections; a success in between starts the count again) and stays down until `recoveryProbes` consecutive
/// probes reach it. The first probe is due `firstProbeDelay` after it was marked down; each failed probe doubles the
/// wait from `probeBackoff.initial` up to `probeBackoff.maximum`, with up to a quarter more of random jitter.
///
/// With `repairsBeforeServing`, an upstream whose probes succeeded *recovers* first: it takes writes again (so that
/// none can be missed after its repair started) but serves no reads until the shell has repaired what it missed and
/// calls `onRepaired`. A failed repair, or `failureLimit` failures while recovering, puts it down again.
///
/// The shell reports outcomes with `onSuccess`, `onFailure`, `onProbe`, `onRepaired` and `onRepairFailed`, calls
/// `onTick` when `nextWakeUp` is reached, and does what the returned actions say. Upstreams are indices `0..<count`.
public struct UpstreamHealth: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public struct Configuration: Sendable, Hashable {
        /// Consecutive transport failures that mark an upstream down. Default 3; values below 1 count as 1.
        public var failureLimit: Int
        /// The wait between probes of a down upstream, doubling after each failed probe. Default 100 ms doubling
        /// up to 2 s, plus up to a quarter of jitter.
        public var probeBackoff: RetryBackoff
        /// Consecutive successful probes that bring a down upstream back, like haproxy's `rise`. Default 1; values
        /// below 1 count as 1. Between them the next probe is due after `probeBackoff.initial` (plus jitter).
        public var recoveryProbes: Int
        /// Whether an upstream back from down takes writes but serves no reads (`.recovering`) until the shell calls
        /// `onRepaired`. Default false: it is up as soon as its probes succeed.
        public var repairsBeforeServing: Bool
        /// How long after an upstream is marked down its first probe is due. Default zero: probed at the next
        /// `onTick`, as the cache proxy's supervisor does on its next pass.
        public var firstProbeDelay: Duration

        public init(
            failureLimit: Int = 3,
            probeBackoff: RetryBackoff = RetryBackoff(initial: .milliseconds(100), maximum: .seconds(2)),
            recoveryProbes: Int = 1,
            repairsBeforeServing: Bool = false,
            firstProbeDelay: Duration = .zero
        ) {
            self.failureLimit = failureLimit
            self.probeBackoff = probeBackoff
            self.recoveryProbes = recoveryProbes
            self.repairsBeforeServing = repairsBeforeServing
            self.firstProbeDelay = firstProbeDelay
        }
    }

    /// What the shell must do.
    public enum Action: Sendable, Hashable {
        /// The upstream reached the failure limit: route around it. `reason` is the last failure's.
        case markedDown(Int, reason: String)
        /// Probe the upstream now, then report with `onProbe`.
        case probe(Int)
        /// Its probes succeeded: send it writes again, no reads; repair it, then call `onRepaired` (or
        /// `onRepairFailed`).
        case beginRecovery(Int)
        /// The upstream serves again, reads included.
        case markedUp(Int)
        /// The repair failed: it is down again (not counted in `timesMarkedDown`) until its next probe.
        case recoveryAborted(Int)
    }

    /// One upstream's record.
    struct Upstream: Sendable, Hashable {
        var state: State = .up
        var consecutiveFailures = 0
        var timesMarkedDown = 0
        /// Successful probes in a row while down (toward `recoveryProbes`).
        var probeSuccesses = 0
    }

    public let configuration: Configuration
    var upstreams: [Upstream]
    /// Upstreams recovering now: while 0 (almost always), a router need not ask `isReadable`.
    var recoveringCount = 0

    /// `count` upstreams, all up.
    public init(count: Int, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.upstreams = Array(repeating: Upstream(), count: count)
    }

    /// How many upstreams there are.
    public var count: Int { upstreams.count }

    /// Whether `upstream` takes requests: up, or recovering (writes only).
    public func isLive(_ upstream: Int) -> Bool {
        if case .down = upstreams[upstream].state { return false }
        return true
    }

    /// Whether `upstream` serves reads: up, and not recovering.
    public func isReadable(_ upstream: Int) -> Bool {
        upstreams[upstream].state == .up
    }

    /// Whether some upstream is recovering.
    public var anyRecovering: Bool { recoveringCount != 0 }

    /// The upstream's state.
    public func state(of upstream: Int) -> State {
        upstreams[upstream].state
    }

    /// The earliest probe due (nil when no down upstream waits for one: all up, or their probes in flight).
    public var nextWakeUp: Instant? {
        var earliest: Instant?
        for upstream in upstreams {
            guard case .down(_, let nextProbe?, _) = upstream.state else { continue }
            earliest = earliest.map { min($0, nextProbe) } ?? nextProbe
        }
        return earliest
    }

    var effectiveFailureLimit: Int { max(1, configuration.failureLimit) }
    var effectiveRecoveryProbes: Int { max(1, configuration.recoveryProbes) }

    /// The configured backoff at its first step.
    var initialBackoff: RetryBackoff {
        var backoff = configuration.probeBackoff
        backoff.reset()
        return backoff
    }
}
