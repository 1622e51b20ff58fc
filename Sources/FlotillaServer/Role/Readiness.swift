import Synchronization

/// Whether a role takes traffic, and where it listens.
///
/// The state is `starting` until the role's listener is bound, `ready`, then `draining` from the
/// moment a shutdown begins; `/readyz` answers 503 unless `ready`. Each listener reports its bound
/// address here (port 0 becomes the port the kernel chose): `/v1/status` shows them, and the ready
/// file (`--ready-file`) is written once every expected listener is bound, which is how tests,
/// the demo and the supervisor find a child's ports.
public final class Readiness: Sendable {
    public enum State: String, Sendable {
        case starting, ready, draining
    }

    private struct Listening {
        var expected: Set<String> = []
        var bound: [String: String] = [:]
        /// Tasks waiting in `allListenersBound`, by id.
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        /// Waiters cancelled before they registered.
        var cancelled: Set<Int> = []

        var complete: Bool { expected.isSubset(of: bound.keys) }
    }

    private let state = Mutex(State.starting)
    private let listening = Mutex(Listening())

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

    // MARK: Listeners

    /// The listeners the process will bind, by name (`admin`, `data`, …).
    public func expectListeners(_ names: [String]) {
        let waiters = listening.withLock { listening -> [CheckedContinuation<Void, Never>] in
            listening.expected.formUnion(names)
            return Self.takeWaitersIfComplete(&listening)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// A listener is bound at `address` (`HOST:PORT`).
    public func bound(_ name: String, address: String) {
        let waiters = listening.withLock { listening -> [CheckedContinuation<Void, Never>] in
            listening.bound[name] = address
            return Self.takeWaitersIfComplete(&listening)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Bound listeners by name.
    public var listeners: [String: String] { listening.withLock { $0.bound } }

    /// Returns once every expected listener is bound, or when the waiting task is cancelled (a
    /// listener that cannot bind fails the role, which cancels the wait).
    public func allListenersBound() async {
        let id = listening.withLock { listening -> Int in
            defer { listening.nextWaiter += 1 }
            return listening.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done = listening.withLock { listening -> Bool in
                    if listening.complete || listening.cancelled.remove(id) != nil { return true }
                    listening.waiters[id] = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            let waiter = listening.withLock { listening -> CheckedContinuation<Void, Never>? in
                guard let waiter = listening.waiters.removeValue(forKey: id) else {
                    listening.cancelled.insert(id)
                    return nil
                }
                return waiter
            }
            waiter?.resume()
        }
    }

    private static func takeWaitersIfComplete(_ listening: inout Listening) -> [CheckedContinuation<Void, Never>] {
        guard listening.complete, !listening.waiters.isEmpty else { return [] }
        defer { listening.waiters = [:] }
        return Array(listening.waiters.values)
    }
}
