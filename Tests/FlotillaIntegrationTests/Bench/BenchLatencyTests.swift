import FlotillaTestSupport
import NIOCore
import Testing

extension BenchTests {
    /// Reported latency against the latency the server measured, and the coordinated-omission contrast.
    @Suite("latency")
    struct Latency {
        /// 400 delays from 5 to 100 ms. The entries around p50, p90 and p99 form plateaus (50, 80 and 95 ms), so
        /// the true percentiles do not move when the sample set shifts by the few requests still in flight when
        /// the run ends; elsewhere the delays are spread evenly.
        static let accuracyTable: [TimeAmount] = {
            var milliseconds: [Double] = []
            milliseconds += (0..<160).map { 5 + 40 * Double($0) / 159 }  // 0–40 %: 5…45 ms
            milliseconds += repeatElement(50, count: 80)  // 40–60 %
            milliseconds += (0..<100).map { 55 + 20 * Double($0) / 99 }  // 60–85 %: 55…75 ms
            milliseconds += repeatElement(80, count: 40)  // 85–95 %
            milliseconds += repeatElement(85, count: 8)  // 95–97 %
            milliseconds += repeatElement(95, count: 10)  // 97–99.5 %
            milliseconds += repeatElement(100, count: 2)  // the top 0.5 %
            // A fixed interleaving (157 is prime to 400), so consecutive requests get unrelated delays.
            let count = milliseconds.count
            return (0..<count).map { .nanoseconds(Int64(milliseconds[($0 * 157) % count] * 1_000_000)) }
        }()

        @Test(
            "closed-loop p50, p90, p99 are the server's latency plus one transport delay, within 2 %",
            .timeLimit(.minutes(1)),
            arguments: [DelayWireProtocol.memcache, .http]
        )
        func accuracy(wireProtocol: DelayWireProtocol) async throws {
            // A loaded two-core machine (another suite, a compiler) can still shift a whole run: a miss is
            // measured again, twice at most.
            var misses: [String] = []
            for attempt in 1...3 {
                let attemptMisses = try await measureAccuracy(wireProtocol)
                if attemptMisses.isEmpty { return }
                misses += attemptMisses.map { "attempt \(attempt): \($0)" }
            }
            Issue.record(
                "reported percentiles off in all 3 attempts:\n\(misses.joined(separator: "\n"))"
            )
        }

        /// One 3 s closed-loop run against the accuracy table; returns the percentiles that missed, described.
        private func measureAccuracy(_ wireProtocol: DelayWireProtocol) async throws -> [String] {
            let configuration = DelayServer.Configuration(wireProtocol: wireProtocol, plan: .cycle(Self.accuracyTable))
            return try await withDelayServer(configuration) { server in
                var arguments = [
                    BenchTests.target(server, path: "/accuracy"), "--duration", "3s", "--warmup", "0",
                    "--connections", "64",
                ]
                if wireProtocol == .memcache { arguments += ["--no-prefill", "--keys", "100"] }
                let (report, run) = try BenchTests.benchJSON(arguments)

                // What the server measured, not what it was asked to inject: on a busy machine its timers fire
                // late, and the bench must report the latency that happened.
                let truth = server.sortedHeldMicroseconds
                #expect(report.requests >= 2_000, "too few samples for the percentiles to mean much: \(run)")
                #expect(report.successes == report.requests)
                #expect(report.errors.values.reduce(0, +) == 0, "\(report.errors)")
                #expect(report.settings.mode == "closed")
                // The server saw every request the bench counted, plus at most the ones in flight at the end.
                #expect(report.requests <= truth.count)
                #expect(truth.count - report.requests <= 64 + truth.count / 50, "server \(truth.count)")
                if wireProtocol == .memcache {
                    // The delay server never stores anything: every get is a miss.
                    #expect(report.hits == 0)
                    #expect((report.misses ?? 0) > 0)
                } else {
                    #expect(report.hits == nil && report.misses == nil)
                }
                // The bench times a request from its write to its reply, the server from the request's arrival to
                // its reply: the bench's figure carries one transport delay more, a fraction of a millisecond on an
                // idle machine and a few on a busy one (the event loops' scheduling), the same at every percentile.
                // So each percentile must be the server's plus the transport delay seen at p50, within 2 % of the
                // percentile (a wrong quantile is off by far more: p95 here is 10 % below p99), and that delay must
                // be small beside the latency itself (at most 10 % of p50) and never negative.
                let expected = [50.0, 90, 99].map { BenchTests.percentile($0, of: truth) }
                let reported = [report.latencyUs.p50, report.latencyUs.p90, report.latencyUs.p99]
                let transport = reported[0] - expected[0]
                var misses: [String] = []
                if transport < -0.02 * expected[0] || transport > 0.1 * expected[0] {
                    misses.append("p50: reported \(reported[0]) µs, true \(expected[0]) µs")
                }
                for (index, name) in [(1, "p90"), (2, "p99")]
                where abs(reported[index] - expected[index] - transport) > 0.02 * expected[index] {
                    misses.append(
                        "\(name): reported \(reported[index]) µs, true \(expected[index]) µs + transport \(transport) µs"
                    )
                }
                return misses
            }
        }

        /// A server that answers in 1 ms but stalls once for a second, 1.5 s after the first request.
        static let stallPlan = DelayPlan.stall(base: .milliseconds(1), startsAfter: .milliseconds(1_500))

        @Test("open loop: a 1 s stall shows in p99", .timeLimit(.minutes(1)))
        func openLoopStall() async throws {
            try await withDelayServer(.init(wireProtocol: .http, plan: Self.stallPlan)) { server in
                let (report, run) = try BenchTests.benchJSON([
                    BenchTests.target(server), "--rate", "200/s", "--duration", "4s", "--warmup", "0",
                    "--connections", "16",
                ])
                #expect(report.settings.mode == "open")
                #expect(report.settings.rate == 200)
                // A quarter of the requests were due during the stall; measured from their intended send time,
                // they waited up to a second.
                #expect(report.latencyUs.p99 >= 800_000, "\(run)")
                #expect(report.latencyUs.max >= 900_000, "\(run)")
                #expect(report.successPercent == 100, "\(report.errors)")
                #expect(abs(report.throughput - 200) <= 30, "open loop must keep to its rate: \(report.throughput)")
            }
        }

        @Test("closed loop: the same stall shows only in max (coordinated omission)", .timeLimit(.minutes(1)))
        func closedLoopStall() async throws {
            try await withDelayServer(.init(wireProtocol: .http, plan: Self.stallPlan)) { server in
                let (report, run) = try BenchTests.benchJSON([
                    BenchTests.target(server), "--duration", "4s", "--warmup", "0", "--connections", "8",
                ])
                #expect(report.settings.mode == "closed")
                // Each connection waited through the stall once; nothing was sent meanwhile, so only 8 samples
                // of thousands carry it.
                #expect(report.latencyUs.max >= 900_000, "\(run)")
                #expect(report.latencyUs.p99 < 200_000, "\(run)")
                #expect(report.successPercent == 100, "\(report.errors)")
            }
        }

        @Test("a request older than --timeout fails as a timeout", .timeLimit(.minutes(1)))
        func timeout() async throws {
            try await withDelayServer(.init(wireProtocol: .memcache, plan: .cycle([.milliseconds(400)]))) { server in
                // Nothing succeeds: exit 1 even without --slo.
                let (report, run) = try BenchTests.benchJSON(
                    [
                        BenchTests.target(server), "--duration", "1s", "--warmup", "0", "--connections", "4",
                        "--no-prefill", "--timeout", "100ms",
                    ],
                    status: 1
                )
                #expect((report.errors["timeout"] ?? 0) > 0, "\(run)")
                #expect(report.successes == 0, "\(run)")
                #expect(report.successPercent == 0)
                // Each timed-out connection is replaced, so the run keeps going: about 10 timeouts per connection.
                #expect(report.requests >= 16, "\(run)")
            }
        }

        @Test("a met SLO exits 0; the report carries the contract's keys", .timeLimit(.minutes(1)))
        func sloMet() async throws {
            try await withDelayServer(.init(wireProtocol: .http, plan: .cycle([.milliseconds(5)]))) { server in
                let spec = "p99<500ms,success>=99%"
                let (report, run) = try BenchTests.benchJSON([
                    BenchTests.target(server), "--duration", "1s", "--warmup", "0", "--connections", "4",
                    "--slo", spec,
                ])
                let slo = try #require(report.slo)
                #expect(slo.met)
                #expect(slo.spec == spec)
                #expect(slo.clauses.map(\.clause) == ["p99<500ms", "success>=99%"])
                #expect(slo.clauses.map(\.met) == [true, true])
                #expect(try BenchJSONReport.missingKeys(in: run.stdout) == [])
                #expect(report.settings.protocol == "http")
                #expect(report.settings.connections == 4)
                #expect(report.settings.durationSeconds == 1)
                #expect(report.settings.warmupSeconds == 0)
                #expect(report.latencyUs.p50 >= 5_000 && report.latencyUs.p50 < 50_000)
            }
        }

        @Test("a missed SLO exits 1", .timeLimit(.minutes(1)))
        func sloMissed() async throws {
            try await withDelayServer(.init(wireProtocol: .memcache, plan: .cycle([.milliseconds(5)]))) { server in
                let (report, _) = try BenchTests.benchJSON(
                    [
                        BenchTests.target(server), "--duration", "1s", "--warmup", "0", "--connections", "4",
                        "--no-prefill", "--slo", "p50<1ms,success>=99%",
                    ],
                    status: 1
                )
                let slo = try #require(report.slo)
                #expect(!slo.met)
                #expect(slo.clauses.map(\.met) == [false, true])
            }
        }
    }
}
