import FlotillaCore
import Foundation
import Histogram
import Testing

@testable import FlotillaBench

@Suite("Bench reports")
struct BenchReportTests {
    static func settings(
        protocol: String = "memcache",
        mode: String = "closed",
        rate: Double? = nil
    )
        -> BenchReport.Settings
    {
        let memcache = `protocol` == "memcache"
        return BenchReport.Settings(
            target: memcache ? "memcache://127.0.0.1:11211" : "http://127.0.0.1:8080/item/{key}",
            protocol: `protocol`,
            mode: mode,
            rate: rate,
            connections: 32,
            pipeline: 1,
            threads: 2,
            durationSeconds: 2,
            warmupSeconds: 1,
            keys: 100_000,
            distribution: "zipf:0.99",
            valueSize: memcache ? 100 : nil,
            getRatio: memcache ? 0.9 : nil,
            multiget: memcache ? 1 : nil,
            sessions: nil
        )
    }

    /// One request for each latency 1 µs … 1000 µs.
    static func oneToThousandMicroseconds() -> BenchTotals {
        var totals = BenchTotals()
        for micros in 1...1000 {
            totals.record(nanoseconds: UInt64(micros) * 1000)
            totals.successes += 1
        }
        return totals
    }

    static func within(_ value: Double, _ expected: Double, relative: Double = 0.001) -> Bool {
        abs(value - expected) <= relative * expected
    }

    @Test func summarisesPercentiles() {
        let report = BenchReport(
            settings: Self.settings(),
            totals: Self.oneToThousandMicroseconds(),
            elapsedSeconds: 2,
            slo: nil
        )
        let latency = report.latencyUs
        #expect(Self.within(latency.p50, 500))
        #expect(Self.within(latency.p90, 900))
        #expect(Self.within(latency.p95, 950))
        #expect(Self.within(latency.p99, 990))
        #expect(Self.within(latency.p99_9, 999))
        #expect(Self.within(latency.max, 1000))
        #expect(Self.within(latency.mean, 500.5))
        #expect(report.requests == 1000)
        #expect(report.successPercent == 100)
        #expect(report.throughput == 500)
        #expect(report.hits == 0 && report.misses == 0)
    }

    @Test func totalsClampAndMerge() {
        var first = BenchTotals()
        first.record(nanoseconds: 0)
        first.record(nanoseconds: .max)
        first.successes = 2
        first.hits = 3
        first.recordError("timeout")
        var second = BenchTotals()
        second.record(nanoseconds: 5000)
        second.errors = ["timeout": 2, "closed": 1]
        second.misses = 4
        first.add(second)
        #expect(first.latency.totalCount == 3)
        #expect(first.latency.maxRecorded == BenchTotals.highestLatencyNanoseconds)
        #expect(first.latency.min == 1)
        #expect(first.errors == ["timeout": 3, "closed": 1])
        #expect(first.errorCount == 4)
        #expect(first.requests == 6)
        #expect(first.hits == 3 && first.misses == 4)
    }

    @Test func successPercentCountsErrors() {
        var totals = BenchTotals()
        totals.successes = 990
        totals.errors = ["timeout": 6, "closed": 4]
        let report = BenchReport(settings: Self.settings(), totals: totals, elapsedSeconds: 10, slo: nil)
        #expect(report.requests == 1000)
        #expect(abs(report.successPercent - 99) < 1e-9)
        #expect(report.throughput == 100)
        #expect(report.text.contains("errors: timeout 6, closed 4"))
    }

    @Test func emptyRunIsAllZeros() {
        let report = BenchReport(settings: Self.settings(), totals: BenchTotals(), elapsedSeconds: 0, slo: nil)
        #expect(report.successPercent == 0)
        #expect(report.throughput == 0)
        #expect(report.latencyUs == BenchReport.Latency(p50: 0, p90: 0, p95: 0, p99: 0, p99_9: 0, max: 0, mean: 0))
        #expect(report.jsonString().contains("\"requests\" : 0"))
    }

    @Test func sloMet() throws {
        let slo = try SLOSpec(parsing: "p99<2ms,success>=99.9%,rate>=400/s")
        let report = BenchReport(
            settings: Self.settings(),
            totals: Self.oneToThousandMicroseconds(),
            elapsedSeconds: 2,
            slo: slo
        )
        let outcome = try #require(report.slo)
        #expect(outcome.met)
        #expect(outcome.spec == "p99<2ms,success>=99.9%,rate>=400/s")
        #expect(outcome.clauses.map(\.clause) == ["p99<2ms", "success>=99.9%", "rate>=400/s"])
        #expect(Self.within(outcome.clauses[0].observed, 990))
        #expect(outcome.clauses[1].observed == 100)
        #expect(outcome.clauses[2].observed == 500)
        #expect(
            report.text.contains(
                "slo          p99<2ms: 990 µs ✓   success>=99.9%: 100.000 % ✓   "
                    + "rate>=400/s: 500 req/s ✓   → met"
            )
        )
    }

    @Test func sloMissedUsesTheFullHistogram() throws {
        // p75 and p99.99 are not among the summarised percentiles.
        let slo = try SLOSpec(parsing: "p75<700us,p99.99<2ms,max<1ms,rate>=1000/s")
        let report = BenchReport(
            settings: Self.settings(),
            totals: Self.oneToThousandMicroseconds(),
            elapsedSeconds: 2,
            slo: slo
        )
        let outcome = try #require(report.slo)
        #expect(!outcome.met)
        #expect(outcome.clauses.map(\.met) == [false, true, false, false])
        #expect(Self.within(outcome.clauses[0].observed, 750))
        #expect(Self.within(outcome.clauses[1].observed, 1000))
        #expect(outcome.clauses[2].observed == 1000)
        #expect(outcome.clauses[3].observed == 500)
        #expect(report.text.contains("p75<700us: 750 µs ✗"))
        #expect(report.text.hasSuffix("→ missed"))
    }

    @Test func jsonHasExactlyTheSnakeCaseKeys() throws {
        let slo = try SLOSpec(parsing: "p99<2ms")
        let report = BenchReport(
            settings: Self.settings(protocol: "http"),
            totals: Self.oneToThousandMicroseconds(),
            elapsedSeconds: 2,
            slo: slo
        )
        let object = try Self.object(report.jsonString())
        #expect(
            Set(object.keys) == [
                "settings", "elapsed_seconds", "requests", "successes", "errors", "success_percent", "throughput",
                "latency_us", "hits", "misses", "slo",
            ]
        )
        let settings = try #require(object["settings"] as? [String: Any])
        #expect(
            Set(settings.keys) == [
                "target", "protocol", "mode", "rate", "connections", "pipeline", "threads", "duration_seconds",
                "warmup_seconds", "keys", "distribution", "value_size", "get_ratio", "multiget", "sessions",
            ]
        )
        #expect(settings["rate"] is NSNull)
        #expect(settings["value_size"] is NSNull)
        #expect(settings["target"] as? String == "http://127.0.0.1:8080/item/{key}")
        let latency = try #require(object["latency_us"] as? [String: Any])
        #expect(Set(latency.keys) == ["p50", "p90", "p95", "p99", "p99_9", "max", "mean"])
        #expect(object["hits"] is NSNull)
        #expect(object["misses"] is NSNull)
        let outcome = try #require(object["slo"] as? [String: Any])
        #expect(Set(outcome.keys) == ["spec", "met", "clauses"])
        let clauses = try #require(outcome["clauses"] as? [[String: Any]])
        #expect(clauses.map { Set($0.keys) } == [["clause", "observed", "met"]])
        // Slashes are not escaped, and the JSON decodes back to the same report.
        #expect(report.jsonString().contains("http://127.0.0.1:8080/item/{key}"))
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(report.jsonString().utf8))
        #expect(decoded == report)
    }

    @Test func jsonForMemcacheCarriesHitsAndNullSLO() throws {
        var totals = Self.oneToThousandMicroseconds()
        totals.hits = 700
        totals.misses = 200
        let report = BenchReport(settings: Self.settings(), totals: totals, elapsedSeconds: 2, slo: nil)
        let object = try Self.object(report.jsonString())
        #expect(object["hits"] as? Int == 700)
        #expect(object["misses"] as? Int == 200)
        #expect(object["slo"] is NSNull)
        #expect((object["settings"] as? [String: Any])?["get_ratio"] as? Double == 0.9)
    }

    @Test func text() {
        var totals = Self.oneToThousandMicroseconds()
        totals.hits = 759_512
        totals.misses = 0
        let report = BenchReport(settings: Self.settings(), totals: totals, elapsedSeconds: 2, slo: nil)
        let lines = report.text.split(separator: "\n").map(String.init)
        #expect(
            lines[0] == "target       memcache://127.0.0.1:11211   closed loop, 32 connections × pipeline 1, 2 threads"
        )
        #expect(lines.contains("duration     2.00 s (warm-up 1.00 s)"))
        #expect(lines.contains("requests     1,000   500 req/s"))
        #expect(lines.contains("success      100.000 %   errors: none"))
        #expect(lines.contains("hits         759,512 of 759,512 gets (100.0 %)"))
        #expect(lines.contains { $0.hasPrefix("latency      p50 500 µs   p90 900 µs   p95 950 µs   p99 990 µs") })
        #expect(!lines.contains { $0.hasPrefix("slo") })

        let open = BenchReport(
            settings: Self.settings(protocol: "http", mode: "open", rate: 5000),
            totals: totals,
            elapsedSeconds: 2,
            slo: nil
        )
        #expect(open.text.contains("open loop at 5,000 req/s, 32 connections × pipeline 1"))
        #expect(!open.text.contains("hits"))
    }

    @Test(arguments: [
        (312.0, "312 µs"), (1020, "1.02 ms"), (8100, "8.10 ms"), (2300, "2.30 ms"), (350, "350 µs"),
        (999.6, "1.00 ms"), (9.996, "10.0 µs"), (99.96, "100 µs"), (0.5, "500 ns"), (0.0123, "12.3 ns"),
        (2_500_000, "2.50 s"), (3_600_000_000, "3600 s"), (0, "0 ns"),
    ])
    func durations(microseconds: Double, text: String) {
        #expect(BenchFormat.duration(microseconds: microseconds) == text)
    }

    @Test func numbers() {
        #expect(BenchFormat.grouped(0) == "0")
        #expect(BenchFormat.grouped(999) == "999")
        #expect(BenchFormat.grouped(1000) == "1,000")
        #expect(BenchFormat.grouped(843_921) == "843,921")
        #expect(BenchFormat.grouped(1_234_567_890) == "1,234,567,890")
        #expect(BenchFormat.fixed(99.9996, decimals: 3) == "100.000")
        #expect(BenchFormat.fixed(0.05, decimals: 1) == "0.1")
        #expect(BenchFormat.fixed(-1.5, decimals: 2) == "-1.50")
        #expect(BenchFormat.rate(84_392.4) == "84,392 req/s")
        #expect(BenchFormat.rate(2.5) == "2.5 req/s")
        #expect(BenchFormat.rate(19.999) == "20 req/s")
        #expect(BenchFormat.rate(20.004) == "20 req/s")
    }

    static func object(_ json: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }
}
