import FlotillaBench

/// The counters read around each phase, every shard's requests and the proxy's `stats`, and the
/// phases recorded from them.
struct DemoLedger {
    private(set) var samples: [ShardSample?]
    /// The proxy's `stats` at the end of the last phase closed.
    private(set) var proxy: MemcacheStats
    private(set) var phases: [DemoResult.Phase] = []
    private let proxyPort: Int

    init(shards: [DemoCluster.Member], proxyPort: Int) async throws {
        self.samples = await Self.sample(shards)
        self.proxy = try await MemcacheStats.fetch(port: proxyPort)
        self.proxyPort = proxyPort
    }

    /// Reads the counters again and records the phase that ends now; returns each shard's
    /// requests in it. `lastWords` stands in for shards that died during the phase: their
    /// counters read just before.
    @discardableResult
    mutating func close(
        _ name: String,
        _ load: BenchOutcome,
        shards: [DemoCluster.Member],
        lastWords: [Int: ShardSample?] = [:]
    ) async throws -> [UInt64?] {
        var now = await Self.sample(shards)
        for (index, sample) in lastWords { now[index] = sample }
        let proxyNow = try await MemcacheStats.fetch(port: proxyPort)
        let requests = zip(samples, now).map { ShardSample.delta($0, $1) }
        phases.append(Self.phase(name, load, requests, proxy, proxyNow))
        samples = now
        proxy = proxyNow
        return requests
    }

    /// Each shard's request counter now; nil for a shard that does not answer.
    private static func sample(_ shards: [DemoCluster.Member]) async -> [ShardSample?] {
        var samples: [ShardSample?] = []
        for shard in shards { samples.append(await ShardSample.fetch(shard)) }
        return samples
    }

    private static func phase(
        _ name: String,
        _ load: BenchOutcome,
        _ shardRequests: [UInt64?],
        _ proxyBefore: MemcacheStats,
        _ proxyAfter: MemcacheStats
    ) -> DemoResult.Phase {
        let totals = load.totals
        let latency = BenchReport.Latency(nanoseconds: totals.latency)
        func delta(_ name: String) -> UInt64 {
            let (before, after) = (proxyBefore.counter(name), proxyAfter.counter(name))
            return after >= before ? after - before : after
        }
        return DemoResult.Phase(
            name: name,
            seconds: load.elapsedSeconds,
            requests: totals.requests,
            throughput: load.elapsedSeconds > 0 ? Double(totals.requests) / load.elapsedSeconds : 0,
            p50Us: latency.p50,
            p99Us: latency.p99,
            errors: totals.errorCount,
            errorsByKind: totals.errors,
            hits: totals.hits,
            misses: totals.misses,
            hitRate: totals.hits + totals.misses > 0 ? Double(totals.hits) / Double(totals.hits + totals.misses) : nil,
            shardRequests: shardRequests,
            fallbackReads: delta("fallback_reads"),
            hintsQueued: delta("hints_queued")
        )
    }
}
