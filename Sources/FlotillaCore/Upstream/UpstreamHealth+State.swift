extension UpstreamHealth {
    /// Where one upstream stands.
    public enum State: Sendable, Hashable {
        /// Takes every request.
        case up
        /// Marked down at `since`; takes no request. `nextProbe` is when it is probed next, nil while a probe is in
        /// flight; `backoff` holds the wait that follows the next failed probe.
        case down(since: Instant, nextProbe: Instant?, backoff: RetryBackoff)
        /// Its probes succeeded (it was down from `since`): takes writes, serves no reads until `onRepaired`. The
        /// backoff carries over: it starts again from its initial delay only once the upstream is up.
        case recovering(since: Instant, backoff: RetryBackoff)

        /// When the current outage began (down or recovering); nil when up.
        public var downSince: Instant? {
            switch self {
            case .up: nil
            case .down(let since, _, _), .recovering(let since, _): since
            }
        }

        /// Whether this is `.down`, whatever its probe schedule.
        public var isDown: Bool {
            if case .down = self { return true }
            return false
        }

        /// Whether this is `.recovering`.
        public var isRecovering: Bool {
            if case .recovering = self { return true }
            return false
        }
    }

    /// One upstream's figures, for stats and the admin API.
    public struct Snapshot: Sendable, Hashable {
        public var state: State
        /// Transport failures since the last success (it keeps counting while down; a probe that brings the upstream
        /// back resets it).
        public var consecutiveFailures: Int
        /// How many times the failure limit marked it down.
        public var timesMarkedDown: Int
        /// When the current outage began (down or recovering); nil when up.
        public var downSince: Instant? { state.downSince }

        public init(state: State, consecutiveFailures: Int, timesMarkedDown: Int) {
            self.state = state
            self.consecutiveFailures = consecutiveFailures
            self.timesMarkedDown = timesMarkedDown
        }
    }

    /// The figures of `upstream`.
    public func snapshot(of upstream: Int) -> Snapshot {
        let record = upstreams[upstream]
        return Snapshot(
            state: record.state,
            consecutiveFailures: record.consecutiveFailures,
            timesMarkedDown: record.timesMarkedDown
        )
    }

    /// The figures of every upstream, indexed like the upstreams.
    public func snapshots() -> [Snapshot] {
        upstreams.indices.map { snapshot(of: $0) }
    }
}
