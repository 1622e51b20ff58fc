import FlotillaTestSupport
import Testing

extension BenchTests {
    /// The bench against real memcached servers: Debian's memcached and `flotilla cache`.
    @Suite(
        "real peers",
        .enabled(if: PeerProcess.memcachedTestsEnabled, Comment(rawValue: PeerProcess.memcachedMissingMessage))
    )
    struct Peers {
        /// A short closed-loop run over a prefilled key space of 1000 keys.
        static let shortRun = ["--keys", "1000", "--duration", "1s", "--warmup", "0"]

        /// Fails the test (rather than skipping it) when memcached is missing: the suite only runs without it in
        /// CI, where a missing memcached must be loud.
        static func requireMemcached() -> Bool {
            guard PeerProcess.memcachedPath != nil else {
                Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
                return false
            }
            return true
        }

        /// The checks every prefilled run must pass: nothing failed and every get hit.
        static func expectAllHits(_ report: BenchJSONReport, _ run: CommandRun) {
            #expect(report.successPercent == 100, "\(run)")
            #expect(report.errors.values.reduce(0, +) == 0, "\(report.errors)")
            #expect((report.hits ?? 0) > 0, "\(run)")
            #expect(report.misses == 0, "prefill must make every get hit: \(run)")
            #expect(report.requests > 100, "\(run)")
        }

        @Test("memcached: prefilled gets all hit", .timeLimit(.minutes(1)))
        func memcached() throws {
            guard Self.requireMemcached() else { return }
            try PeerProcess.withMemcached { port in
                let (report, run) = try BenchTests.benchJSON(
                    ["memcache://127.0.0.1:\(port)", "--get-ratio", "0.9"] + Self.shortRun
                )
                Self.expectAllHits(report, run)
                #expect(report.settings.getRatio == 0.9)
                #expect(report.settings.protocol == "memcache")

                // Keys are "bench:" + the index, zero-padded to --key-size (32) characters; prefill set them all.
                let client = try WireClient(port: port)
                defer { client.close() }
                let key = "bench:" + String(repeating: "0", count: 25) + "7"
                #expect(client.send(Array("get \(key)\r\n".utf8)))
                let reply = client.read(timeout: .seconds(5)) { $0.suffix(5) == Array("END\r\n".utf8) }
                #expect(
                    String(decoding: reply.bytes, as: UTF8.self).hasPrefix("VALUE \(key) "),
                    "key \(key) should exist after the prefill"
                )
            }
        }

        @Test("flotilla cache: prefilled gets all hit", .timeLimit(.minutes(1)))
        func flotillaCache() throws {
            try PeerProcess.withFlotilla { addresses in
                let (report, run) = try BenchTests.benchJSON(
                    ["memcache://127.0.0.1:\(addresses.dataPort)", "--get-ratio", "0.9"] + Self.shortRun
                )
                Self.expectAllHits(report, run)
            }
        }

        @Test("--multiget 4 counts hits per key", .timeLimit(.minutes(1)))
        func multiget() throws {
            guard Self.requireMemcached() else { return }
            try PeerProcess.withMemcached { port in
                let (report, run) = try BenchTests.benchJSON(
                    ["memcache://127.0.0.1:\(port)", "--multiget", "4"] + Self.shortRun
                )
                Self.expectAllHits(report, run)
                #expect(report.settings.multiget == 4)
                // 90 % of requests are gets of 4 keys each: about 3.6 hits per request.
                let hits = report.hits ?? 0
                #expect(hits >= 3 * report.successes && hits <= 4 * report.successes, "\(run)")
            }
        }

        @Test("--compare memcached with flotilla cache", .timeLimit(.minutes(1)))
        func compare() throws {
            guard Self.requireMemcached() else { return }
            try PeerProcess.withMemcached { memcachedPort in
                try PeerProcess.withFlotilla { flotilla in
                    let a = "memcache://127.0.0.1:\(memcachedPort)"
                    let b = "memcache://127.0.0.1:\(flotilla.dataPort)"
                    let run = try BenchTests.bench(
                        ["--compare", a, b, "--rounds", "2", "--keys", "1000", "--duration", "1s", "--warmup", "0"]
                            + ["--json", "--quiet"],
                        timeout: .seconds(45)
                    )
                    try #require(run.status == 0 && !run.timedOut, "\(run)")
                    let comparison = try BenchJSONComparison.decode(run.stdout)
                    #expect(comparison.a.target == a)
                    #expect(comparison.b.target == b)
                    #expect(comparison.a.rounds.count == 2)
                    #expect(comparison.b.rounds.count == 2)
                    for side in [comparison.a, comparison.b] {
                        #expect(side.median.throughput > 0)
                        #expect(side.median.successPercent == 100)
                        for round in side.rounds { Self.expectAllHits(round, run) }
                        let throughputs = side.rounds.map(\.throughput)
                        #expect(
                            (throughputs.min() ?? 0)...(throughputs.max() ?? 0) ~= side.median.throughput,
                            "the median lies among the rounds: \(throughputs), \(side.median.throughput)"
                        )
                    }
                    let ratio = comparison.ratio
                    #expect(ratio.throughput > 0 && ratio.p50 > 0 && ratio.p99 > 0, "\(run.stdout)")
                    let expected = comparison.b.median.throughput / comparison.a.median.throughput
                    #expect(abs(ratio.throughput - expected) <= 0.02 * expected, "ratio is b/a: \(run.stdout)")
                }
            }
        }
    }
}
