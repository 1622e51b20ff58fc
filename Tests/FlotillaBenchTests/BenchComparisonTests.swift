import FlotillaBench
import Foundation
import Testing

@Suite("Bench comparisons")
struct BenchComparisonTests {
    static func report(target: String, throughput: Double, p50: Double, success: Double = 100) -> BenchReport {
        let settings = BenchReport.Settings(
            target: target,
            protocol: "memcache",
            mode: "closed",
            connections: 4,
            pipeline: 1,
            threads: 1,
            durationSeconds: 5,
            warmupSeconds: 1,
            keys: 1000,
            distribution: "uniform"
        )
        var report = BenchReport(settings: settings, totals: BenchTotals(), elapsedSeconds: 5, slo: nil)
        report.throughput = throughput
        report.successPercent = success
        report.latencyUs = BenchReport.Latency(
            p50: p50,
            p90: p50 * 2,
            p95: p50 * 3,
            p99: p50 * 4,
            p99_9: p50 * 5,
            max: p50 * 10,
            mean: p50
        )
        return report
    }

    @Test func medianOfOddAndEvenCounts() {
        #expect(BenchComparison.median([3, 1, 2]) == 2)
        #expect(BenchComparison.median([4, 1, 3, 2]) == 2.5)
        #expect(BenchComparison.median([7]) == 7)
    }

    @Test func mediansAndRatios() {
        let a = [
            Self.report(target: "memcache://a:1", throughput: 100, p50: 30),
            Self.report(target: "memcache://a:1", throughput: 300, p50: 10),
            Self.report(target: "memcache://a:1", throughput: 200, p50: 20),
        ]
        let b = [
            Self.report(target: "memcache://b:2", throughput: 400, p50: 10, success: 99),
            Self.report(target: "memcache://b:2", throughput: 100, p50: 40, success: 100),
            Self.report(target: "memcache://b:2", throughput: 300, p50: 20, success: 98),
            Self.report(target: "memcache://b:2", throughput: 200, p50: 30, success: 97),
        ]
        let comparison = BenchComparison(a: a, b: b)
        #expect(comparison.a.target == "memcache://a:1")
        #expect(comparison.b.target == "memcache://b:2")
        #expect(comparison.a.median.throughput == 200)
        #expect(comparison.a.median.p50 == 20)
        #expect(comparison.a.median.p99 == 80)
        #expect(comparison.a.median.max == 200)
        #expect(comparison.b.median.throughput == 250)
        #expect(comparison.b.median.p50 == 25)
        #expect(comparison.b.median.p99_9 == 125)
        #expect(comparison.b.median.successPercent == 98.5)
        #expect(comparison.ratio.throughput == 1.25)
        #expect(comparison.ratio.p50 == 1.25)
        #expect(comparison.ratio.successPercent == 0.985)
        #expect(comparison.a.rounds == a)

        let lines = comparison.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(
            lines[0].contains("A memcache://a:1") && lines[0].contains("B memcache://b:2") && lines[0].hasSuffix("B/A")
        )
        #expect(lines.contains { $0.hasPrefix("throughput") && $0.contains("200 req/s") && $0.hasSuffix("1.250") })
        #expect(lines.contains { $0.hasPrefix("p99.9 ") })
        #expect(lines.contains { $0.hasPrefix("success ") && $0.hasSuffix("0.985") })
        let rounds = lines.filter { $0.hasPrefix("round ") }.map { $0.prefix(9) }
        #expect(rounds == ["round 1 A", "round 1 B", "round 2 A", "round 2 B", "round 3 A", "round 3 B", "round 4 B"])
    }

    @Test func ratioIsZeroWhenASideIsZero() {
        let comparison = BenchComparison(
            a: [Self.report(target: "http://a:80/", throughput: 0, p50: 0, success: 0)],
            b: [Self.report(target: "http://b:80/", throughput: 50, p50: 5)]
        )
        #expect(comparison.ratio == BenchComparison.Medians(of: []))  // all zero
        #expect(comparison.text.contains("–"))
    }

    @Test func jsonKeys() throws {
        let comparison = BenchComparison(
            a: [Self.report(target: "http://a:80/", throughput: 10, p50: 5)],
            b: [Self.report(target: "http://b:80/", throughput: 20, p50: 5)]
        )
        let json = comparison.jsonString()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["a", "b", "ratio"])
        let medianKeys: Set<String> = ["throughput", "p50", "p90", "p99", "p99_9", "max", "success_percent"]
        for name in ["a", "b"] {
            let side = try #require(object[name] as? [String: Any])
            #expect(Set(side.keys) == ["target", "rounds", "median"])
            #expect(Set(try #require(side["median"] as? [String: Any]).keys) == medianKeys)
            let rounds = try #require(side["rounds"] as? [[String: Any]])
            #expect(rounds.count == 1)
            #expect(rounds[0]["latency_us"] != nil && rounds[0]["hits"] != nil)
        }
        #expect(Set(try #require(object["ratio"] as? [String: Any]).keys) == medianKeys)
        #expect(try JSONDecoder().decode(BenchComparison.self, from: Data(json.utf8)) == comparison)
    }
}
