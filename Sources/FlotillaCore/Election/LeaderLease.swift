/// A leader's own proof that it still leads: the pure clock of one term (STYLE.md rule 1).
///
/// A term holds for `ttl` from the moment an acknowledged keep-alive was *sent* (the coordinator
/// refreshed the lease at some point after that, never before). The leader renews every `ttl / 3`
/// and steps down at `validUntil - margin`, where the margin covers stopping its work (the grace
/// period before SIGKILL) plus a slack for clock rate differences: its work is over before the
/// coordinator can let anyone else lead.
///
/// The shell calls `keepAliveSent`, `keepAliveHeld`, `keepAliveFailed` and `tick` with the time,
/// sleeps until `nextWakeUp`, and does what the returned actions say.
public struct LeaderLease: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// What the shell must do.
    public enum Action: Sendable, Hashable {
        /// Send a keep-alive now.
        case sendKeepAlive
        /// Leadership is proven for the first time in this term: start the leader's work.
        case lead
        /// Leadership can no longer be proven (or was lost): stop the work now.
        case stepDown(StepDownReason)
    }

    public enum StepDownReason: String, Sendable, Hashable {
        /// No keep-alive was acknowledged in time.
        case unproven
        /// The coordinator said the term is over.
        case lost
        /// The leader gave the term up.
        case resigned
    }

    public struct Configuration: Sendable, Hashable {
        /// The term's time to live, as the coordinator granted it.
        public var ttl: Duration
        /// How long before the lease can expire the leader stops its work.
        public var margin: Duration

        public init(ttl: Duration, margin: Duration) {
            self.ttl = ttl
            self.margin = margin
        }

        /// Renewals happen every third of the TTL.
        public var renewInterval: Duration { ttl / 3 }
        /// A failed keep-alive is retried sooner than the next renewal.
        public var retryInterval: Duration { min(ttl / 10, .milliseconds(250)) }
    }

    public enum State: Sendable, Hashable {
        /// Elected; the first keep-alive is out, the work not started yet.
        case proving
        case leading
        case steppedDown(StepDownReason)
    }

    public let configuration: Configuration
    public private(set) var state: State = .proving
    /// The term holds until then, as far as this process can prove; nil before the first proof.
    public private(set) var validUntil: Instant?
    /// When the next keep-alive is due (nil while one is in flight).
    public private(set) var nextKeepAlive: Instant?
    private var inFlight = false
    /// Until the first proof: when to give up proving (the work never started).
    private let provingDeadline: Instant

    /// A term just won at `now`: prove it before leading.
    public init(configuration: Configuration, now: Instant) {
        self.configuration = configuration
        self.nextKeepAlive = now
        self.provingDeadline = now + configuration.ttl - configuration.margin
    }

    /// When the leader must have stopped its work (before the first proof: when to stop trying).
    public var stepDownAt: Instant? { validUntil.map { $0 - configuration.margin } ?? provingDeadline }

    /// The next moment `tick` has something to do.
    public var nextWakeUp: Instant? {
        guard !isOver else { return nil }
        guard let stop = stepDownAt else { return nextKeepAlive }
        return nextKeepAlive.map { min($0, stop) } ?? stop
    }

    public var isOver: Bool {
        if case .steppedDown = state { return true }
        return false
    }

    /// Time passes: step down once the proof runs out, send a keep-alive when one is due.
    public mutating func tick(now: Instant) -> [Action] {
        guard !isOver else { return [] }
        if let stepDownAt, now >= stepDownAt {
            return stepDown(.unproven)
        }
        if let due = nextKeepAlive, now >= due, !inFlight {
            return [.sendKeepAlive]
        }
        return []
    }

    /// The shell sent a keep-alive.
    public mutating func keepAliveSent() {
        inFlight = true
        nextKeepAlive = nil
    }

    /// The keep-alive sent at `sentAt` was acknowledged: the term holds until `sentAt + ttl`.
    public mutating func keepAliveHeld(sentAt: Instant, ttl: Duration, now: Instant) -> [Action] {
        guard !isOver else { return [] }
        inFlight = false
        let proven = sentAt + min(ttl, configuration.ttl)
        validUntil = max(validUntil ?? proven, proven)
        nextKeepAlive = now + configuration.renewInterval
        if let stepDownAt, now >= stepDownAt {
            // Acknowledged too late to count: the work must already be stopped.
            return stepDown(.unproven)
        }
        if state == .proving {
            state = .leading
            return [.lead]
        }
        return []
    }

    /// The coordinator said the term is over.
    public mutating func keepAliveLost() -> [Action] {
        guard !isOver else { return [] }
        inFlight = false
        return stepDown(.lost)
    }

    /// The keep-alive failed (unreachable, timed out): retry soon; the proof still runs out on time.
    public mutating func keepAliveFailed(now: Instant) -> [Action] {
        guard !isOver else { return [] }
        inFlight = false
        nextKeepAlive = now + configuration.retryInterval
        return tick(now: now)
    }

    /// The leader gives up (resign, shutdown, its work ended).
    public mutating func resign() -> [Action] {
        guard !isOver else { return [] }
        return stepDown(.resigned)
    }

    private mutating func stepDown(_ reason: StepDownReason) -> [Action] {
        state = .steppedDown(reason)
        nextKeepAlive = nil
        inFlight = false
        return [.stepDown(reason)]
    }
}
