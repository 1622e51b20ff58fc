import FlotillaCore
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FlotillaServer

@Suite("Recorder, rates and logs")
struct RecorderTests {
    @Test func mergesShardsOfEveryLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let recorder = OperationRecorder(operations: ["get", "set"], group: group)
        for loop in group.makeIterator() {
            try await loop.submit {
                let shard = recorder.shard(on: loop)
                for value in 1...1000 { shard.record(0, nanoseconds: UInt64(value) * 1_000, failed: value > 990) }
                shard.record(1, nanoseconds: 5_000, failed: false)
            }.get()
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
