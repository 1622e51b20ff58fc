import FlotillaCore
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FlotillaServer

@Suite("Recorder, rates and logs")
struct RecorderTests {
    /// Runs `record` on each of two event loops with their own shard of a `get`/`set` recorder.
    private func recordOnTwoLoops(
        _ record: @escaping @Sendable (OperationRecorder.Shard) -> Void
    ) async throws -> (OperationRecorder, MultiThreadedEventLoopGroup) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let recorder = OperationRecorder(operations: ["get", "set"], group: group)
        for loop in group.makeIterator() {
            try await loop.submit { record(recorder.shard(on: loop)) }.get()
        }
        return (recorder, group)
    }

    @Test func mergesShardsOfEveryLoop() async throws {
        let (recorder, group) = try await recordOnTwoLoops { shard in
            for value in 1...1000 { shard.record(0, nanoseconds: UInt64(value) * 1_000, failed: value > 990) }
            shard.record(1, nanoseconds: 5_000, failed: false)
        }
        let snapshot = await recorder.snapshot()
        #expect(snapshot[0].count == 2000)
        #expect(snapshot[0].errors == 20)
        #expect(snapshot[1].count == 2)
        // 2 significant digits: within 1 % of the true p50 of 500 µs.
        #expect(abs(snapshot[0].latencyMicroseconds(50) - 500) <= 5)
        #expect(abs(snapshot[0].latencyMicroseconds(99) - 990) <= 10)
        #expect(snapshot[0].successRatio == 0.99)
        #expect(await recorder.totals() == [2000, 2])
        try await group.shutdownGracefully()
    }

    @Test func latencyIsAPrometheusHistogramWithCumulativeBuckets() async throws {
        // 30 µs, 300 µs and 3 ms on each loop, 2 s once.
        let (recorder, group) = try await recordOnTwoLoops { shard in
            for nanoseconds: UInt64 in [30_000, 300_000, 3_000_000] {
                shard.record(0, nanoseconds: nanoseconds, failed: false)
            }
        }
        let loop = group.next()
        try await loop.submit { recorder.shard(on: loop).record(0, nanoseconds: 2_000_000_000, failed: true) }.get()
        let text = LatencyHistogramExposition.render(await recorder.snapshot())
        let lines = text.split(separator: "\n").map(String.init)
        #expect(
            lines.prefix(2) == [
                "# HELP flotilla_request_duration_seconds \(LatencyHistogramExposition.help)",
                "# TYPE flotilla_request_duration_seconds histogram",
            ]
        )
        func sample(_ name: String) -> String? {
            lines.first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) }
        }
        let get = "flotilla_request_duration_seconds_bucket{operation=\"get\",le="
        #expect(sample(get + "\"1e-5\"}") == "0")
        #expect(sample(get + "\"5e-5\"}") == "2")
        #expect(sample(get + "\"0.001\"}") == nil)  // bounds are written as 1e-3
        #expect(sample(get + "\"5e-4\"}") == "4")
        #expect(sample(get + "\"5e-3\"}") == "6")
        #expect(sample(get + "\"1e0\"}") == "6")
        #expect(sample(get + "\"2.5e0\"}") == "7")
        #expect(sample(get + "\"+Inf\"}") == "7")
        #expect(sample("flotilla_request_duration_seconds_count{operation=\"get\"}") == "7")
        #expect(sample("flotilla_request_duration_seconds_sum{operation=\"get\"}") == "\(2.006660)")
        #expect(sample("flotilla_request_duration_seconds_count{operation=\"set\"}") == "0")
        // Cumulative: each bucket holds at least the one before it.
        let counts = lines.filter { $0.hasPrefix(get) }.compactMap { UInt64($0.split(separator: " ").last!) }
        #expect(counts.count == LatencyHistogramExposition.bounds.count + 1)
        #expect(zip(counts, counts.dropFirst()).allSatisfy { $0 <= $1 })
        try await group.shutdownGracefully()
    }

    @Test func ratesOverTheWindow() {
        let window = RateWindow(window: .seconds(10))
        let start = ContinuousClock.now
        window.record([0, 0], at: start)
        window.record([50, 10], at: start + .seconds(1))
        let rates = window.rates(current: [200, 20], at: start + .seconds(2))
        #expect(rates == [100, 10])
    }

    @Test func sloVerdictCoversAllOperations() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let recorder = OperationRecorder(operations: ["get"], group: group)
        let loop = group.next()
        try await loop.submit {
            let shard = recorder.shard(on: loop)
            for _ in 0..<999 { shard.record(0, nanoseconds: 100_000, failed: false) }
            shard.record(0, nanoseconds: 100_000, failed: true)
        }.get()
        let report = await StatusReport.make(
            recorder: recorder,
            rates: RateWindow(),
            slo: try SLOSpec(parsing: "p99<1ms,success>=99.95%")
        )
        #expect(report.verdicts?.map(\.met) == [true, false])
        try await group.shutdownGracefully()
    }

    @Test func jsonLogLinesEscapeEverything() {
        #expect(JSONLogHandler.escape("a\"b\\c\nd\u{1}") == "a\\\"b\\\\c\\nd\\u0001")
    }
}
