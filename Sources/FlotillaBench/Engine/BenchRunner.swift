import FlotillaCore
import Histogram
import NIOCore
import NIOPosix

/// Where a run stands, once a second, for the progress line.
public struct BenchProgress: Sendable {
    public enum Phase: String, Sendable { case warmup, measure }
    public var phase: Phase
    /// Seconds since the phase began.
    public var elapsed: Double
    /// Requests completed per second over the last interval.
    public var rate: Double
    /// p99 latency of the timed phase so far, microseconds (0 in the warm-up).
    public var p99Microseconds: Double
    public var requests: UInt64
    public var errors: UInt64
}

/// What a run measured in its timed phase.
public struct BenchOutcome: Sendable {
    public var totals: BenchTotals
    public var elapsedSeconds: Double
    /// Sets of the prefill the target refused (a full or read-only cache, say).
    public var prefillFailures: Int
    /// The task was cancelled (Ctrl-C) during the timed phase: the figures cover `elapsedSeconds` only.
    public var interrupted: Bool
}

/// Runs one `BenchPlan`: connect, prefill, warm up, measure, and stop.
///
/// Cancelling the calling task during the timed phase ends it early with what was measured so far
/// (`BenchOutcome.interrupted`); before it, the run throws `CancellationError`.
public enum BenchRunner {
    public static func run(
        _ plan: BenchPlan,
        progress: (@Sendable (BenchProgress) -> Void)? = nil
    ) async throws -> BenchOutcome {
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(plan.target.host, port: plan.target.port)
        } catch {
            throw BenchRunError("cannot resolve '\(plan.target.host)': \(error)")
        }
        let group: MultiThreadedEventLoopGroup
        #if os(Linux)
        if plan.pinThreads {
            let cpus = System.coreCount
            group = MultiThreadedEventLoopGroup(pinnedCPUIDs: (0..<plan.effectiveThreads).map { $0 % cpus })
        } else {
            group = MultiThreadedEventLoopGroup(numberOfThreads: plan.effectiveThreads)
        }
        #else
        group = MultiThreadedEventLoopGroup(numberOfThreads: plan.effectiveThreads)
        #endif
        do {
            let outcome = try await run(plan, address: address, group: group, progress: progress)
            try? await group.shutdownGracefully()
            return outcome
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(
        _ plan: BenchPlan,
        address: SocketAddress,
        group: MultiThreadedEventLoopGroup,
        progress: (@Sendable (BenchProgress) -> Void)?
    ) async throws -> BenchOutcome {
        let loops = Array(group.makeIterator())
        var drivers: [NIOLoopBound<LoopDriver>] = []
        for (index, loop) in loops.enumerated() {
            let driver = try await loop.submit {
                NIOLoopBound(
                    try LoopDriver(plan: plan, address: address, loop: loop, loopIndex: index, loopCount: loops.count),
                    eventLoop: loop
                )
            }.get()
            drivers.append(driver)
        }
        func onEveryLoop<T: Sendable>(
            _ body: @escaping @Sendable (LoopDriver) -> EventLoopFuture<T>
        ) async throws -> [T] {
            var results: [T] = []
            for driver in drivers {
                results.append(try await driver.eventLoop.flatSubmit { body(driver.value) }.get())
            }
            return results
        }
        func stopAll() async -> [BenchTotals] {
            (try? await onEveryLoop { $0.loop.makeSucceededFuture($0.stop()) }) ?? []
        }

        do {
            _ = try await onEveryLoop { $0.connectAll() }
        } catch {
            _ = await stopAll()
            throw BenchRunError("cannot connect to \(plan.target) (\(address)): \(describe(error))")
        }
        if plan.target.kind == .memcache, plan.prefill, plan.getRatio > 0 {
            do {
                _ = try await onEveryLoop { $0.prefill() }
            } catch {
                _ = await stopAll()
                throw BenchRunError("prefill of \(plan.keys) keys failed: \(describe(error))")
            }
        }

        let origin = NIODeadline.now()
        _ = try await onEveryLoop { $0.loop.makeSucceededFuture($0.start(at: origin)) }
        let clock = ContinuousClock()
        let warmupEnd = clock.now.advanced(by: plan.warmup)
        var previous: UInt64 = 0
        var lastTick = clock.now
        while clock.now < warmupEnd {
            do {
                try await Task.sleep(until: min(warmupEnd, lastTick.advanced(by: .seconds(1))), clock: clock)
            } catch {
                _ = await stopAll()
                throw error
            }
            guard let progress, clock.now < warmupEnd else { continue }
            let now = clock.now
            let requests = try await onEveryLoop { $0.loop.makeSucceededFuture($0.completedSinceStart) }.reduce(0, +)
            progress(
                BenchProgress(
                    phase: .warmup,
                    elapsed: (now - warmupEnd + plan.warmup).inSeconds,
                    rate: Double(requests &- previous) / max((now - lastTick).inSeconds, 1e-9),
                    p99Microseconds: 0,
                    requests: requests,
                    errors: 0
                )
            )
            previous = requests
            lastTick = now
        }

        _ = try await onEveryLoop { $0.loop.makeSucceededFuture($0.beginRecording()) }
        let measureStart = clock.now
        let measureEnd = measureStart.advanced(by: plan.duration)
        previous = 0
        lastTick = measureStart
        var interrupted = false
        while clock.now < measureEnd {
            do {
                try await Task.sleep(until: min(measureEnd, lastTick.advanced(by: .seconds(1))), clock: clock)
            } catch {
                interrupted = true
                break
            }
            guard let progress, clock.now < measureEnd else { continue }
            let now = clock.now
            var merged = BenchTotals()
            for totals in try await onEveryLoop({ $0.loop.makeSucceededFuture($0.snapshot()) }) {
                merged.add(totals)
            }
            progress(
                BenchProgress(
                    phase: .measure,
                    elapsed: (now - measureStart).inSeconds,
                    rate: Double(merged.requests &- previous) / max((now - lastTick).inSeconds, 1e-9),
                    p99Microseconds: merged.latency.totalCount == 0
                        ? 0 : Double(merged.latency.valueAtPercentile(99)) / 1000,
                    requests: merged.requests,
                    errors: merged.errorCount
                )
            )
            previous = merged.requests
            lastTick = now
        }
        let stoppedAt = clock.now
        var totals = BenchTotals()
        for part in await stopAll() { totals.add(part) }
        let prefillFailures = try await onEveryLoop { $0.loop.makeSucceededFuture($0.prefillFailures) }
        return BenchOutcome(
            totals: totals,
            elapsedSeconds: (stoppedAt - measureStart).inSeconds,
            prefillFailures: prefillFailures.reduce(0, +),
            interrupted: interrupted
        )
    }

    /// NIO's connect errors, phrased for a person.
    static func describe(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first {
                return describe(first.error)
            }
            if let resolution = error.dnsAError ?? error.dnsAAAAError {
                return "cannot resolve the host: \(resolution)"
            }
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "connection refused (is the server listening on that port?)"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH, ENETUNREACH: return "host unreachable"
            default: return "\(error)"
            }
        }
        if error is ChannelError, case .connectTimeout = error as? ChannelError {
            return "connect timed out"
        }
        return "\(error)"
    }
}
