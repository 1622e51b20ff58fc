import Synchronization

/// Whether a role takes traffic: `starting` until its listener is bound, `ready`, then
/// `draining` from the moment a shutdown begins. `/readyz` answers 503 unless `ready`.
public final class Readiness: Sendable {
    public enum State: String, Sendable {
        case starting, ready, draining
    }

    private let state = Mutex(State.starting)

    public init() {}

    public var current: State { state.withLock { $0 } }

    public func markReady() {
        state.withLock { if $0 == .starting { $0 = .ready } }
    }

    /// For roles whose readiness follows a dependency (elect: its coordinator): ready while it
    /// answers, starting while it does not; a drain is final.
    public func set(ready: Bool) {
        state.withLock { if $0 != .draining { $0 = ready ? .ready : .starting } }
    }

    public func markDraining() {
        state.withLock { $0 = .draining }
    }
}
