import FlotillaCore
import Testing

@Suite("SLO specs")
struct SLOSpecTests {
    @Test func parsesEveryClauseKind() throws {
        let spec = try SLOSpec(parsing: "p99<1ms, success>=99.9%,p99.9<5ms,max<1s,rate>=1000/s")
        #expect(
            spec.clauses.map(\.objective) == [
                .latency(percentile: 99, microseconds: 1_000),
                .success(percent: 99.9),
                .latency(percentile: 99.9, microseconds: 5_000),
                .latency(percentile: 100, microseconds: 1_000_000),
                .rate(perSecond: 1000),
            ]
        )
        #expect(spec.description == "p99<1ms,success>=99.9%,p99.9<5ms,max<1s,rate>=1000/s")
    }

    @Test(arguments: ["", "p99", "p99<fast", "p100<1ms", "q99<1ms", "success>=101%", "rate>=-1/s", "p99>1ms"])
    func rejectsMalformedSpecs(text: String) {
        #expect(throws: SLOSpec.ParseError.self) { try SLOSpec(parsing: text) }
    }

    @Test func errorsNameTheClause() {
        do {
            _ = try SLOSpec(parsing: "p99<1ms,p42<zzz")
            Issue.record("expected a parse error")
        } catch {
            #expect(error.clause == "p42<zzz")
            #expect(error.description.contains("duration"))
        }
    }

    @Test func evaluatesAgainstObservations() throws {
        let spec = try SLOSpec(parsing: "p99<1ms,success>=99.9%,rate>=10/s")
        let verdicts = spec.evaluate(
            latencyMicroseconds: { $0 == 99 ? 1_200 : 0 },
            successPercent: 99.95,
            ratePerSecond: 12
        )
        #expect(verdicts.map(\.met) == [false, true, true])
        #expect(verdicts[0].observed == 1_200)
        #expect(verdicts[0].clause == "p99<1ms")
    }
}
