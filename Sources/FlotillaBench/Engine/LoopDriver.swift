import FlotillaCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request written and not yet answered.
struct PendingRequest {
    /// Where its latency is counted from: the intended send time in an open loop, else the send time.
    var start: UInt64
    /// When it was written, for `--timeout`.
    var sent: UInt64
    /// Keys asked for by a get; 0 for a set or an HTTP request.
    var keys: Int32
    /// HTTP with `--sessions`: the virtual user who sent it; -1 otherwise.
    var user: Int32
}

/// What a protocol's channel handler does for the driver. All calls happen on the handler's loop.
protocol BenchConnection: AnyObject {
    /// Writes one request of the workload, without flushing.
    func writeRequest(start: UInt64, now: UInt64) -> PendingRequest
    /// Writes a set of key `index` (memcache prefill), without flushing.
    func writePrefill(key index: Int, now: UInt64) -> PendingRequest
    /// False once the peer announced it will close the connection (`Connection: close`).
    var acceptsRequests: Bool { get }
    func flush()
    func close()
}

/// One connection's place in the run: it outlives the channel, so that its open-loop schedule
/// carries on across a reconnect (requests due while it was down are sent late, and their latency
/// shows the outage).
final class ConnectionSlot {
    /// 0..<connections over the whole run.
    let index: Int
    var connection: (any BenchConnection)?
    var pending = CircularBuffer<PendingRequest>(initialCapacity: 8)

    /// Open loop: intended send time of request n is `firstIntended + n × interval`.
    var firstIntended: UInt64 = 0
    var interval: UInt64 = 0
    var nextRequest: UInt64 = 0
    var tickScheduled = false

    /// Consecutive failed connects, for the reconnect backoff.
    var connectFailures = 0
    /// The peer announced the close (HTTP `Connection: close`): requests written after that answer
    /// are not failures of the target, only unlucky, and are not counted.
    var closeAnnounced = false

    /// While recording: requests completed, time without a connection, and since when it has
    /// none (nil while connected). Open loop: requests due and not sent when recording began.
    var completed: UInt64 = 0
    var downNanoseconds: UInt64 = 0
    var downSince: UInt64?
    var unsentAtRecording: UInt64 = 0

    /// Memcache prefill: the next key to set (stepping by the connection count), and who waits.
    var prefillNext = 0
    var prefillPromise: EventLoopPromise<Void>?

    init(index: Int) {
        self.index = index
    }
}

/// Drives the connections of one event loop and keeps their totals. Lives on that loop only.
final class LoopDriver {
    let loop: any EventLoop
    let plan: BenchPlan
    let address: SocketAddress
    let loopIndex: Int
    let loopCount: Int
    var slots: [ConnectionSlot] = []

    /// Load is generated while this is set.
    private(set) var running = false
    /// Completions are counted while this is set (after the warm-up).
    private(set) var recording = false
    var totals = BenchTotals()
    var prefillFailures = 0

    // Workload state, shared by this loop's connections.
    var random: FastRandom
    let sampler: KeySampler
    var keyFormatter: KeyFormatter
    let memcache: MemcacheWorkload?
    let http: HTTPWorkload?
    var users: [SessionUser] = []
    private var nextUser = 0

    private let timeoutNanoseconds: UInt64
    private var timeoutScan: Scheduled<Void>?
    private var stopped = false

    init(plan: BenchPlan, address: SocketAddress, loop: any EventLoop, loopIndex: Int, loopCount: Int) throws {
        self.plan = plan
        self.address = address
        self.loop = loop
        self.loopIndex = loopIndex
        self.loopCount = loopCount
        // Every loop draws its own stream from the run's seed.
        self.random = FastRandom(seed: plan.seed &+ UInt64(loopIndex) &* 0x9E37_79B9_7F4A_7C15)
        self.sampler = try KeySampler(plan.distribution, keys: plan.keys)
        self.keyFormatter = KeyFormatter(keySize: plan.keySize)
        self.timeoutNanoseconds = UInt64(max(plan.timeout.nanoseconds, 1))
        switch plan.target.kind {
        case .memcache:
            self.memcache = MemcacheWorkload(plan: plan)
            self.http = nil
        case .http:
            self.memcache = nil
            self.http = HTTPWorkload(plan: plan)
            if let sessions = plan.sessions {
                // Users are split among loops like connections are; a user's requests go over every
                // connection of its loop in turn.
                for user in stride(from: loopIndex, to: sessions, by: loopCount) {
                    let id = String(random.next(), radix: 16)
                    users.append(SessionUser(cookieName: plan.sessionCookie, id: "vu\(user)-\(id)"))
                }
            }
        }
        for index in stride(from: loopIndex, to: plan.connections, by: loopCount) {
            slots.append(ConnectionSlot(index: index))
        }
    }

    // MARK: Phases (called by the runner on this loop)

    /// Opens every connection of this loop; fails with the first connect error.
    func connectAll() -> EventLoopFuture<Void> {
        let futures = slots.map { connect($0) }
        return EventLoopFuture.andAllSucceed(futures, on: loop)
    }

    /// Sets every key once (memcache), so that gets hit.
    func prefill() -> EventLoopFuture<Void> {
        var futures: [EventLoopFuture<Void>] = []
        for slot in slots where slot.index < plan.keys {
            let promise = loop.makePromise(of: Void.self)
            slot.prefillNext = slot.index
            slot.prefillPromise = promise
            prefillStep(slot)
            futures.append(promise.futureResult)
        }
        scheduleTimeoutScan()
        return EventLoopFuture.andAllSucceed(futures, on: loop)
    }

    /// Starts the load; `start` is the common origin of every open-loop schedule.
    func start(at start: NIODeadline) {
        running = true
        let origin = start.uptimeNanoseconds
        if let rate = plan.rate {
            let interval = Double(plan.connections) / rate * 1e9
            for slot in slots {
                slot.interval = UInt64(max(interval, 1))
                // Stagger connections evenly over one interval.
                slot.firstIntended = origin &+ UInt64(interval * Double(slot.index) / Double(plan.connections))
            }
        }
        let now = NIODeadline.now().uptimeNanoseconds
        for slot in slots {
            fill(slot, now: now)
            slot.connection?.flush()
        }
        scheduleTimeoutScan()
    }

    func beginRecording() {
        totals = BenchTotals()
        recording = true
        let now = NIODeadline.now().uptimeNanoseconds
        recordingStart = now
        for slot in slots {
            slot.completed = 0
            slot.downNanoseconds = 0
            if slot.downSince != nil { slot.downSince = now }
            slot.unsentAtRecording = unsent(slot, at: now)
        }
    }

    /// When recording began.
    private var recordingStart: UInt64 = 0

    /// Open loop: requests of `slot` due by `now` and not written.
    private func unsent(_ slot: ConnectionSlot, at now: UInt64) -> UInt64 {
        let due = BenchAccounting.due(first: slot.firstIntended, interval: slot.interval, at: now)
        return due > slot.nextRequest ? due - slot.nextRequest : 0
    }

    /// Counts what the recorded window owed and did not get (see `BenchAccounting`).
    private func chargeOwedRequests(at now: UInt64) {
        if plan.rate != nil {
            var notSent: UInt64 = 0
            for slot in slots {
                // A request due in the last moment may be on its way (its timer not fired yet): only
                // those due more than an interval (and 10 ms) before the end must have been sent.
                let grace = slot.interval &+ 10_000_000
                let unsent = unsent(slot, at: now &- min(now, grace))
                if unsent > slot.unsentAtRecording { notSent += unsent - slot.unsentAtRecording }
            }
            if notSent > 0 { totals.errors["not_sent", default: 0] += notSent }
            return
        }
        let window = now &- recordingStart
        var downs: [(down: UInt64, up: UInt64, completed: UInt64)] = []
        var upTotal: UInt64 = 0
        var completedTotal: UInt64 = 0
        for slot in slots {
            var down = slot.downNanoseconds
            if let since = slot.downSince { down += now &- max(since, recordingStart) }
            down = min(down, window)
            downs.append((down, window - down, slot.completed))
            if slot.completed > 0 {
                upTotal += window - down
                completedTotal += slot.completed
            }
        }
        let fallback = upTotal > 0 ? Double(completedTotal) / Double(upTotal) : 0
        let unavailable = downs.reduce(UInt64(0)) { total, slot in
            total
                + BenchAccounting.unavailable(
                    downNanoseconds: slot.down,
                    upNanoseconds: slot.up,
                    completed: slot.completed,
                    fallbackPerNanosecond: fallback
                )
        }
        if unavailable > 0 { totals.errors["unavailable", default: 0] += unavailable }
    }

    /// What was counted so far (for progress lines).
    func snapshot() -> BenchTotals { totals }

    /// Requests answered since the load started, counted or not (for warm-up progress).
    private(set) var completedSinceStart: UInt64 = 0

    /// Stops the load and counting, closes every connection, and hands back the totals.
    func stop() -> BenchTotals {
        if recording { chargeOwedRequests(at: NIODeadline.now().uptimeNanoseconds) }
        recording = false
        running = false
        stopped = true
        timeoutScan?.cancel()
        for slot in slots {
            slot.connection?.close()
        }
        return totals
    }

    // MARK: Requests

    /// Writes as many requests as the connection may have in flight now (not flushed).
    func fill(_ slot: ConnectionSlot, now: UInt64) {
        guard let connection = slot.connection else { return }
        fill(slot, via: connection, now: now)
    }

    /// `fill` for a known connection type: the handlers call it with `self`, so that the hot path
    /// is specialised and makes no existential calls.
    func fill<Connection: BenchConnection>(_ slot: ConnectionSlot, via connection: Connection, now: UInt64) {
        guard running, connection.acceptsRequests else { return }
        let window = plan.pipeline
        if slot.interval > 0 {
            while slot.pending.count < window {
                let intended = slot.firstIntended &+ slot.nextRequest &* slot.interval
                guard intended <= now else { break }
                slot.pending.append(connection.writeRequest(start: intended, now: now))
                slot.nextRequest &+= 1
            }
            if slot.pending.count < window, !slot.tickScheduled {
                scheduleTick(slot, at: slot.firstIntended &+ slot.nextRequest &* slot.interval)
            }
        } else {
            while slot.pending.count < window {
                slot.pending.append(connection.writeRequest(start: now, now: now))
            }
        }
    }

    private func scheduleTick(_ slot: ConnectionSlot, at uptime: UInt64) {
        slot.tickScheduled = true
        loop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(uptime)) {
            slot.tickScheduled = false
            self.fill(slot, now: NIODeadline.now().uptimeNanoseconds)
            slot.connection?.flush()
        }
    }

    /// The oldest request of `slot` got its answer at `now`. Writes the next ones (not flushed).
    func complete<Connection: BenchConnection>(
        _ slot: ConnectionSlot,
        via connection: Connection,
        now: UInt64,
        failure: String?,
        hits: Int = 0
    ) {
        guard let request = slot.pending.popFirst() else {
            // An answer nobody asked for.
            protocolError(slot)
            return
        }
        if slot.prefillPromise != nil {
            if failure != nil { prefillFailures += 1 }
            prefillStep(slot)
            return
        }
        completedSinceStart &+= 1
        if recording {
            slot.completed &+= 1
            totals.record(nanoseconds: now &- min(request.start, now))
            if let failure {
                totals.errors[failure, default: 0] += 1
            } else {
                totals.successes &+= 1
                if request.keys > 0 {
                    totals.hits &+= UInt64(hits)
                    totals.misses &+= UInt64(max(Int(request.keys) - hits, 0))
                }
            }
        }
        fill(slot, via: connection, now: now)
    }

    /// The peer broke the protocol: the oldest request fails as "protocol", the connection is replaced.
    func protocolError(_ slot: ConnectionSlot) {
        if !slot.pending.isEmpty {
            slot.pending.removeFirst()
            if recording, running { totals.errors["protocol", default: 0] += 1 }
        }
        slot.connection?.close()
    }

    // MARK: Prefill

    private func prefillStep(_ slot: ConnectionSlot) {
        guard let connection = slot.connection, let promise = slot.prefillPromise else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        var wrote = false
        while slot.pending.count < max(plan.pipeline, 16), slot.prefillNext < plan.keys {
            slot.pending.append(connection.writePrefill(key: slot.prefillNext, now: now))
            slot.prefillNext += plan.connections
            wrote = true
        }
        if wrote { connection.flush() }
        if slot.pending.isEmpty, slot.prefillNext >= plan.keys {
            slot.prefillPromise = nil
            promise.succeed()
        }
    }

    // MARK: Sessions

    /// The next virtual user of this loop, round robin.
    func takeUser() -> Int {
        let user = nextUser
        nextUser = nextUser + 1 == users.count ? 0 : nextUser + 1
        return user
    }

    // MARK: Connections

    private func connect(_ slot: ConnectionSlot) -> EventLoopFuture<Void> {
        let bound = NIOLoopBound((self, slot), eventLoop: loop)
        let connectTimeout = TimeAmount.nanoseconds(Int64(min(timeoutNanoseconds, 10_000_000_000)))
        return ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let (driver, slot) = bound.value
                    switch driver.plan.target.kind {
                    case .memcache:
                        try channel.pipeline.syncOperations.addHandler(MemcacheBenchHandler(driver: driver, slot: slot))
                    case .http:
                        try channel.pipeline.syncOperations.addHTTPClientHandlers(
                            leftOverBytesStrategy: .dropBytes,
                            enableOutboundHeaderValidation: false
                        )
                        try channel.pipeline.syncOperations.addHandler(HTTPBenchHandler(driver: driver, slot: slot))
                    }
                }
            }
            .connect(to: address)
            .map { _ in }
    }

    /// A handler's channel became active.
    func connected(_ slot: ConnectionSlot, _ connection: any BenchConnection) {
        slot.connection = connection
        slot.connectFailures = 0
        if let since = slot.downSince {
            if recording { slot.downNanoseconds &+= NIODeadline.now().uptimeNanoseconds &- max(since, recordingStart) }
            slot.downSince = nil
        }
        fill(slot, now: NIODeadline.now().uptimeNanoseconds)
        connection.flush()
    }

    /// A handler's channel went away: what was in flight is lost; reconnect while the run goes on.
    func disconnected(_ slot: ConnectionSlot) {
        slot.connection = nil
        if running, slot.downSince == nil { slot.downSince = NIODeadline.now().uptimeNanoseconds }
        let lost = slot.closeAnnounced ? 0 : slot.pending.count
        slot.closeAnnounced = false
        slot.pending.removeAll()
        if let promise = slot.prefillPromise {
            slot.prefillPromise = nil
            promise.fail(BenchRunError("the connection closed while setting the keys (prefill)"))
        }
        if recording, running, lost > 0 { totals.errors["closed", default: 0] += UInt64(lost) }
        if running { reconnect(slot) }
    }

    private func reconnect(_ slot: ConnectionSlot) {
        // 0, 10 ms, 20 ms, 40 ms … up to 1 s between attempts.
        let delay = slot.connectFailures == 0 ? 0 : min(10 << min(slot.connectFailures - 1, 7), 1000)
        let bound = NIOLoopBound((self, slot), eventLoop: loop)
        loop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delay))) {
            let (driver, slot) = bound.value
            guard driver.running else { return }
            driver.connect(slot).whenFailure { _ in
                let (driver, slot) = bound.value
                // Not a request: the time without a connection is what counts (`chargeOwedRequests`).
                slot.connectFailures += 1
                if driver.running { driver.reconnect(slot) }
            }
        }
    }

    /// Fails requests older than `--timeout` and replaces their connection.
    private func scheduleTimeoutScan() {
        guard timeoutScan == nil, !stopped else { return }
        let every = min(max(Int64(timeoutNanoseconds / 4), 1_000_000), 100_000_000)
        timeoutScan = loop.assumeIsolated().scheduleTask(in: .nanoseconds(every)) {
            let now = NIODeadline.now().uptimeNanoseconds
            for slot in self.slots {
                guard let first = slot.pending.first, now &- min(first.sent, now) > self.timeoutNanoseconds else {
                    continue
                }
                if self.recording, slot.prefillPromise == nil {
                    self.totals.errors["timeout", default: 0] += UInt64(slot.pending.count)
                }
                slot.pending.removeAll()
                slot.connection?.close()
            }
            self.timeoutScan = nil
            self.scheduleTimeoutScan()
        }
    }
}

/// Failure of a run as a whole (the target cannot be reached at all, the prefill failed).
public struct BenchRunError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
