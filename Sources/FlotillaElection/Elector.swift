import FlotillaCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Campaigns for leadership of one election on a coordinator, proves it while it lasts, runs the
/// leader's work and hands over (a `Service`, STYLE.md rule 4).
///
/// Each term: campaign (retrying with backoff while the coordinator cannot be reached), prove the
/// term with a first keep-alive, run the `LeaderWork`, renew every TTL/3, and step down a margin
/// before the lease could expire when no renewal is acknowledged: fire the work's stop signal,
/// wait for the work to end, resign, campaign again. On graceful shutdown: stop the work, resign,
/// return. When the work ends by itself: resign, return. The decisions are `LeaderLease`'s.
public final class Elector: Service {
    public struct Configuration: Sendable {
        /// This candidate's id, published as the leader's id.
        public var candidate: String
        /// How long before the lease can expire the work is told to stop (default 1s). It must
        /// cover the work's own stop (its grace period) and leave a slack.
        public var margin: Duration = .seconds(1)
        /// How often the current leader is read from the coordinator, for `status` and readiness
        /// (default 1s).
        public var observeInterval: Duration = .seconds(1)
        /// Longest wait for a resign on the way out (default 2s).
        public var resignTimeout: Duration = .seconds(2)
        /// Retry delays while the coordinator cannot be reached (default 100ms doubling to 5s).
        public var backoff = RetryBackoff()

        public init(candidate: String) {
            self.candidate = candidate
        }
    }

    /// What this elector knows, for the sidecar and the admin surface.
    public struct Status: Sendable {
        /// This candidate's term while it leads (proven).
        public var term: ElectionTerm?
        /// When this candidate's term was proven.
        public var since: Date?
        /// The leader as last read from the coordinator, and when this node first saw it.
        public var observed: LeaderRecord?
        public var observedSince: Date?
        /// Whether the last call to the coordinator was answered.
        public var coordinatorReachable = false
    }

    public let configuration: Configuration
    public let coordinator: any ElectionCoordinator
    private let work: (any LeaderWork)?
    private let logger: Logger
    private let statusState = Mutex(Status())
    private let shutdown = StopSignal()
    /// The events of the term being led, if any.
    private let leadEvents = Mutex<AsyncStream<LeadEvent>.Continuation?>(nil)
    private let changesContinuation: AsyncStream<LeadershipChange>.Continuation

    /// Leadership changes as they happen (the newest 64 are kept for a slow reader).
    public let changes: AsyncStream<LeadershipChange>

    public init(
        configuration: Configuration,
        coordinator: any ElectionCoordinator,
        work: (any LeaderWork)? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        self.coordinator = coordinator
        self.work = work
        var logger = logger
        logger[metadataKey: "election.candidate"] = "\(configuration.candidate)"
        self.logger = logger
        (changes, changesContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    public var status: Status { statusState.withLock { $0 } }

    /// Runs until a graceful shutdown, a cancellation, or the work's own end.
    public func run() async throws {
        defer { changesContinuation.finish() }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.observe() }
                    await self.campaignLoop()
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                self.requestShutdown()
            }
        } onCancel: {
            self.requestShutdown()
        }
    }

    private func requestShutdown() {
        shutdown.fire()
        leadEvents.withLock { $0 }?.yield(.shutdown)
    }

    // MARK: Campaigns

    private func campaignLoop() async {
        var backoff = configuration.backoff
        while !shutdown.isFired {
            let term: ElectionTerm
            do {
                guard
                    let won = try await untilShutdown({
                        try await self.coordinator.campaign(candidate: self.configuration.candidate)
                    })
                else { return }
                term = won
                backoff.reset()
                markReachable(true)
            } catch {
                markReachable(false)
                let delay = backoff.next(random: Double.random(in: 0..<1))
                logger.warning(
                    "coordinator unreachable; campaigning again after a delay",
                    metadata: [
                        "coordinator": "\(coordinator.description)", "error": "\(error)",
                        "retry.in": "\(delay)", "retry.attempt": "\(backoff.failures)",
                    ]
                )
                _ = try? await untilShutdown { try await Task.sleep(for: delay) }
                continue
            }
            // In a task of its own, which a cancellation of `run()` does not reach: a cancellation
            // arrives as a shutdown event instead, so that the work is stopped and awaited before
            // the resign, as on a graceful shutdown (a cancelled task's event stream would end early).
            let outcome = await Task { await self.lead(term) }.value
            await resign(term)
            if outcome == .finished { return }
        }
    }

    /// Runs `body` in a child task, cancelled when the shutdown signal fires; nil then.
    private func untilShutdown<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                await self.shutdown.wait()
                return nil
            }
            defer { group.cancelAll() }
            let first = try await group.next() ?? nil
            return first
        }
    }

    /// Resigns `term`, waiting at most `resignTimeout`. Runs in a task of its own, which a
    /// cancellation of `run()` does not reach: the resign is what lets a standby take over at once.
    private func resign(_ term: ElectionTerm) async {
        let coordinator = self.coordinator
        let timeout = configuration.resignTimeout
        let logger = self.logger
        await Task {
            do {
                _ = try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await coordinator.resign(term)
                        return true
                    }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        return false
                    }
                    defer { group.cancelAll() }
                    if try await group.next() == false {
                        throw CoordinatorError(.unreachable, "no answer within \(timeout)")
                    }
                }
                logger.info("resigned", metadata: ["election.token": "\(term.token)"])
            } catch {
                // The lease then ends by itself within its TTL.
                logger.warning("resign failed", metadata: ["election.token": "\(term.token)", "error": "\(error)"])
            }
        }.value
    }

    // MARK: One term

    private enum LeadEvent: Sendable {
        case tick
        case keepAlive(sentAt: ContinuousClock.Instant, Result<KeepAliveResult, CoordinatorError>)
        case workEnded
        case shutdown
    }

    private enum LeadOutcome {
        /// Stepped down; campaign again.
        case steppedDown
        /// The work ended by itself, or a shutdown: resign and stop.
        case finished
    }

    private func lead(_ term: ElectionTerm) async -> LeadOutcome {
        let (events, continuation) = AsyncStream<LeadEvent>.makeStream()
        leadEvents.withLock { $0 = continuation }
        defer { leadEvents.withLock { $0 = nil } }
        if shutdown.isFired { return .finished }

        var lease = LeaderLease(
            configuration: .init(ttl: term.ttl, margin: min(configuration.margin, term.ttl / 2)),
            now: .now
        )
        let stop = StopSignal()
        var working = false
        var workRunning = false
        var outcome: LeadOutcome?
        var logger = self.logger
        logger[metadataKey: "election.token"] = "\(term.token)"
        logger.info("elected; proving the term")

        let wakeUp = WakeUp(lease.nextWakeUp ?? .now)
        await withDiscardingTaskGroup { group in
            group.addTask {
                // The clock of the lease: a tick at its next deadline, and at least every 250 ms (a
                // deadline that moves earlier, a failed renewal's retry, is seen by then).
                while !Task.isCancelled {
                    continuation.yield(.tick)
                    let next = min(wakeUp.instant, .now + .milliseconds(250))
                    try? await Task.sleep(until: max(next, .now + .milliseconds(1)))
                }
            }
            var actions: [LeaderLease.Action] = []
            for await event in events {
                let now = ContinuousClock.now
                switch event {
                case .tick:
                    actions = lease.tick(now: now)
                case .keepAlive(let sentAt, .success(.held(let ttl))):
                    markReachable(true)
                    actions = lease.keepAliveHeld(sentAt: sentAt, ttl: ttl, now: now)
                case .keepAlive(_, .success(.lost)):
                    markReachable(true)
                    actions = lease.keepAliveLost()
                case .keepAlive(_, .failure(let error)):
                    markReachable(false)
                    logger.warning("keep-alive failed", metadata: ["error": "\(error)"])
                    actions = lease.keepAliveFailed(now: now)
                case .workEnded:
                    workRunning = false
                    outcome = .finished
                    actions = lease.resign()
                case .shutdown:
                    outcome = .finished
                    actions = lease.resign()
                }
                for action in actions {
                    switch action {
                    case .sendKeepAlive:
                        lease.keepAliveSent()
                        group.addTask {
                            let sentAt = ContinuousClock.now
                            let result: Result<KeepAliveResult, CoordinatorError>
                            do {
                                result = .success(try await self.coordinator.keepAlive(term))
                            } catch let error as CoordinatorError {
                                result = .failure(error)
                            } catch {
                                result = .failure(CoordinatorError(.unreachable, "\(error)"))
                            }
                            continuation.yield(.keepAlive(sentAt: sentAt, result))
                        }
                    case .lead:
                        working = true
                        setLeading(term)
                        logger.notice("leading")
                        changesContinuation.yield(.leading(term))
                        if let work {
                            workRunning = true
                            group.addTask {
                                await work.lead(term, stop: stop)
                                continuation.yield(.workEnded)
                            }
                        }
                    case .stepDown(let reason):
                        if reason != .resigned {
                            logger.warning(
                                "stepping down: leadership can no longer be proven",
                                metadata: ["reason": "\(reason.rawValue)"]
                            )
                        }
                        stop.fire()
                    }
                }
                if lease.isOver { break }
                if let next = lease.nextWakeUp { wakeUp.instant = next }
            }
            // The work must be over before anyone else can lead: wait for it, then end the term.
            if workRunning {
                for await event in events {
                    if case .shutdown = event { outcome = .finished }
                    if case .workEnded = event { break }
                }
            }
            group.cancelAll()
        }
        continuation.finish()
        if working {
            clearLeading()
            changesContinuation.yield(.steppedDown(term, reason: outcome == .finished ? "resigned" : "unproven"))
        }
        return outcome ?? .steppedDown
    }

    // MARK: Status

    private func setLeading(_ term: ElectionTerm) {
        statusState.withLock { status in
            status.term = term
            status.since = Date()
            status.observed = LeaderRecord(id: term.leaderID, token: term.token)
            status.observedSince = status.since
        }
    }

    private func clearLeading() {
        statusState.withLock { status in
            status.term = nil
            status.since = nil
        }
    }

    private func markReachable(_ reachable: Bool) {
        statusState.withLock { $0.coordinatorReachable = reachable }
    }

    /// Reads the leader every `observeInterval`, for `status` and readiness.
    private func observe() async {
        while !Task.isCancelled {
            await refreshObservedLeader()
            try? await Task.sleep(for: configuration.observeInterval)
        }
    }

    /// Reads the leader from the coordinator now; nil and unreachable when it does not answer.
    @discardableResult
    public func refreshObservedLeader() async -> Status {
        do {
            let leader = try await coordinator.leader()
            return statusState.withLock { status in
                status.coordinatorReachable = true
                if leader != status.observed {
                    status.observed = leader
                    status.observedSince =
                        leader == nil ? nil : (leader?.token == status.term?.token ? status.since : Date())
                }
                return status
            }
        } catch {
            return statusState.withLock { status in
                status.coordinatorReachable = false
                return status
            }
        }
    }
}

/// The lease's next deadline, shared with the task that ticks.
private final class WakeUp: Sendable {
    private let value: Mutex<ContinuousClock.Instant>

    init(_ instant: ContinuousClock.Instant) {
        value = Mutex(instant)
    }

    var instant: ContinuousClock.Instant {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
