import FlotillaBench
import FlotillaCore
import FlotillaTopology

/// The demo's story: start the cluster, load it, kill a shard, bring it back, and measure each
/// phase. Every process it starts is the cluster's, which the caller stops however this ends.
struct DemoScenario: Sendable {
    /// What the demo runs; the defaults are the demo's.
    struct Configuration: Sendable {
        /// Multiplies every phase's length (tests run it at 0.3).
        var durationScale = 1.0
        /// `flotilla cache` shards (default: 4).
        var shards = 4
        /// Copies of each key (default: 2).
        var replicas = 2
        /// Client connections to the proxy (default: 16).
        var connections = 16
        /// Distinct keys (default: 10,000).
        var keys = 10_000
        /// Share of gets, the rest sets (default: 0.9).
        var getRatio = 0.9
        /// Key popularity (default: zipf 0.99, a few keys take most requests).
        var zipfExponent = 0.99
        /// Seconds of each phase before scaling (default: 5, 6, 5).
        var steadySeconds = 5.0
        var outageSeconds = 6.0
        var recoverySeconds = 5.0
        /// The longest wait for the proxy to take the restarted shard back (default: 20 s).
        var recoveryTimeout: Duration = .seconds(20)

        func scaled(_ seconds: Double, atLeast minimum: Double = 0.1) -> Duration {
            .milliseconds(Int64(max(seconds * durationScale, minimum) * 1000))
        }
    }

    let configuration: Configuration
    let cluster: DemoCluster
    let console: DemoConsole

    /// The shard the demo kills and brings back.
    private struct Victim: Sendable {
        var index: Int
        var member: DemoCluster.Member
        var name: String { "shard \(index + 1) (\(member.address))" }
        /// Its lines in the proxy's `stats`.
        func stat(_ field: String) -> String { "shard:\(member.address):\(field)" }
    }

    func run() async throws -> DemoResult {
        let started = try await startCluster()
        var shards = started.shards
        let proxyPort = started.proxy.dataPort
        describeLoad()
        try await prefill(proxyPort: proxyPort)
        var ledger = try await DemoLedger(shards: shards, proxyPort: proxyPort)

        // Phase 1: every shard up.
        let steady = try await runPhase("[1/3 steady]", plan: makePlan(proxyPort, configuration.steadySeconds)) {}
        let steadyRequests = try await ledger.close("steady", steady.load, shards: shards)

        // Phase 2: the busiest shard dies.
        let busiest = steadyRequests.indices.max { (steadyRequests[$0] ?? 0) < (steadyRequests[$1] ?? 0) } ?? 0
        let victim = Victim(index: busiest, member: shards[busiest])
        let outage = try await runPhase("[2/3 shard down]", plan: makePlan(proxyPort, configuration.outageSeconds)) {
            try await kill(victim, proxyPort: proxyPort)
        }
        try await ledger.close(
            "shard down",
            outage.load,
            shards: shards,
            lastWords: [victim.index: outage.outcome.lastWords]
        )

        // Phase 3: the shard returns, empty, on the same port. The load goes on until it is back
        // and has served a while, however long that takes.
        var recoveryPlan = makePlan(proxyPort, configuration.recoverySeconds)
        recoveryPlan.duration += configuration.recoveryTimeout + .seconds(5)
        let recovery = try await runPhase("[3/3 recovery]", plan: recoveryPlan, stopLoadWhenDone: true) {
            try await restart(victim, proxyPort: proxyPort)
        }
        shards[victim.index] = recovery.outcome.member
        try await ledger.close("recovery", recovery.load, shards: shards)

        return DemoResult(
            settings: .init(
                shards: configuration.shards,
                replicas: configuration.replicas,
                connections: configuration.connections,
                keys: configuration.keys,
                distribution: KeyDistribution.zipf(exponent: configuration.zipfExponent).description,
                getRatio: configuration.getRatio,
                durationScale: configuration.durationScale
            ),
            shards: shards.map(\.address),
            killedShard: victim.index,
            markedDownAfterSeconds: outage.outcome.downAfter,
            backAfterSeconds: recovery.outcome.backAfter,
            hintsReplayed: ledger.proxy.counter(victim.stat("hints_replayed")),
            hintsPending: ledger.proxy.counter(victim.stat("pending_hints")),
            phases: ledger.phases
        )
    }

    /// Every key set once, so that gets hit from the start. A prefill cut short (a request
    /// slower than the load's timeout on a starved machine) only costs misses at first.
    private func prefill(proxyPort: Int) async throws {
        console.say("prefill: setting each of the \(DemoFormat.grouped(Double(configuration.keys))) keys once")
        var plan = makePlan(proxyPort, 0.2)
        plan.prefill = true
        do {
            let outcome = try await BenchRunner.run(plan)
            if outcome.prefillFailures > 0 {
                console.say("warning: the proxy refused \(outcome.prefillFailures) sets of the prefill")
            }
        } catch let error as BenchRunError {
            console.say("warning: \(error.description); the keys are set as the load goes")
        }
    }

    /// Phase 2's action: SIGKILL to the shard under load, then the proxy's verdict.
    private func kill(
        _ victim: Victim,
        proxyPort: Int
    ) async throws -> (lastWords: ShardSample?, downAfter: Double?) {
        try await Task.sleep(for: configuration.scaled(1, atLeast: 0.3))
        // Its counters just before it dies: its share of the phase.
        let lastWords = await ShardSample.fetch(victim.member)
        console.say("[2/3 shard down] SIGKILL to \(victim.name), the busiest shard, under load")
        let killedAt = ContinuousClock.now
        await victim.member.process.crash()
        let deadline = killedAt + configuration.scaled(configuration.outageSeconds)
        guard
            let downAt = try await waitForProxy(
                port: proxyPort,
                until: deadline,
                { $0[victim.stat("state")] == "down" }
            )
        else {
            console.say("[2/3 shard down] the proxy has not marked \(victim.name) down")
            return (lastWords, nil)
        }
        let after = (downAt.instant - killedAt).inSeconds
        console.say(
            "[2/3 shard down] the proxy marked \(victim.name) down after \(DemoFormat.fixed(after, digits: 2)) s;"
                + " its keys go to the next shards, the writes it misses are kept as hints"
        )
        return (lastWords, after)
    }

    /// Phase 3's action: the shard restarted on its port, the proxy's verdict, then the rest of
    /// the phase (and at least a second, scaled, after the shard is back).
    private func restart(
        _ victim: Victim,
        proxyPort: Int
    ) async throws -> (member: DemoCluster.Member, backAfter: Double?) {
        let phaseEnd = ContinuousClock.now + configuration.scaled(configuration.recoverySeconds)
        try await Task.sleep(for: configuration.scaled(0.5, atLeast: 0.2))
        console.say("[3/3 recovery] restarting \(victim.name), empty, on the same port")
        let member = try await cluster.startShard(
            name: "shard \(victim.index + 1)",
            port: victim.member.dataPort,
            attempts: 5
        )
        let restartedAt = ContinuousClock.now
        let deadline = restartedAt + configuration.recoveryTimeout
        guard let up = try await waitForProxy(port: proxyPort, until: deadline, { $0[victim.stat("state")] == "up" })
        else {
            console.say(
                "[3/3 recovery] the proxy did not take \(victim.name) back within \(configuration.recoveryTimeout)"
            )
            return (member, nil)
        }
        let back = (up.instant - restartedAt).inSeconds
        let replayed = up.stats.counter(victim.stat("hints_replayed"))
        console.say(
            "[3/3 recovery] the proxy marked \(victim.name) up after \(DemoFormat.fixed(back, digits: 2)) s,"
                + " having replayed \(DemoFormat.grouped(Double(replayed))) hints to it"
        )
        try await Task.sleep(
            until: max(phaseEnd, up.instant + configuration.scaled(1, atLeast: 0.3)),
            clock: .continuous
        )
        return (member, back)
    }

    /// Polls the proxy's `stats` until `condition` holds (returning when, and the stats) or
    /// `deadline` passes (nil).
    private func waitForProxy(
        port: Int,
        until deadline: ContinuousClock.Instant,
        _ condition: (MemcacheStats) -> Bool
    ) async throws -> (instant: ContinuousClock.Instant, stats: MemcacheStats)? {
        while ContinuousClock.now < deadline {
            if let stats = try? await MemcacheStats.fetch(port: port), condition(stats) {
                return (ContinuousClock.now, stats)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

}
