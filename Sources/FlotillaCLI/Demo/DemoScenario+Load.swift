import FlotillaBench
import NIOCore

extension DemoScenario {
    /// The demo's load through the proxy for `seconds` (scaled): closed loop, no warm-up (the
    /// phases follow each other), and the prefill left to the first run.
    func makePlan(_ proxyPort: Int, _ seconds: Double) -> BenchPlan {
        // The target is always well-formed: a loopback address and a port the proxy reported.
        var plan = BenchPlan(target: try! BenchTarget(parsing: "memcache://127.0.0.1:\(proxyPort)"))
        plan.connections = configuration.connections
        plan.threads = min(System.coreCount, 2)
        plan.duration = configuration.scaled(seconds)
        plan.warmup = .zero
        plan.keys = configuration.keys
        plan.keySize = BenchPlan.minimumKeySize(keys: configuration.keys)
        plan.distribution = .zipf(exponent: configuration.zipfExponent)
        plan.getRatio = configuration.getRatio
        plan.prefill = false
        plan.timeout = .seconds(5)
        return plan
    }

    /// Runs the load of one phase with `action` beside it, and returns both outcomes. The load
    /// ends after its duration, or, when `stopLoadWhenDone` says so, as soon as the action ends.
    func runPhase<Outcome: Sendable>(
        _ label: String,
        plan: BenchPlan,
        stopLoadWhenDone: Bool = false,
        action: @escaping @Sendable () async throws -> Outcome
    ) async throws -> (load: BenchOutcome, outcome: Outcome) {
        let console = self.console
        let (load, outcome) = try await withThrowingTaskGroup(of: PhaseEvent<Outcome>.self) { group in
            group.addTask { .load(try await BenchRunner.run(plan) { console.progress(label, $0) }) }
            group.addTask { .action(try await action()) }
            var load: BenchOutcome?
            var outcome: Outcome?
            while let event = try await group.next() {
                switch event {
                case .load(let finished):
                    load = finished
                case .action(let finished):
                    outcome = finished
                    if stopLoadWhenDone { group.cancelAll() }
                }
            }
            return (load!, outcome!)
        }
        console.endProgress()
        let report = BenchReport(
            settings: BenchReport.Settings(plan: plan),
            totals: load.totals,
            elapsedSeconds: load.elapsedSeconds,
            slo: nil
        )
        var summary = "\(label) \(DemoFormat.seconds(load.elapsedSeconds)): "
        summary += "\(DemoFormat.grouped(report.throughput)) req/s, "
        summary += "p50 \(DemoFormat.latency(microseconds: report.latencyUs.p50)), "
        summary += "p99 \(DemoFormat.latency(microseconds: report.latencyUs.p99)), "
        summary += "\(DemoFormat.grouped(Double(load.totals.errorCount))) errors"
        if load.totals.hits + load.totals.misses > 0 {
            summary += ", hit rate "
            summary += DemoFormat.percent(Double(load.totals.hits), of: Double(load.totals.hits + load.totals.misses))
        }
        console.say(summary)
        return (load, outcome)
    }

    enum PhaseEvent<Outcome: Sendable>: Sendable {
        case load(BenchOutcome)
        case action(Outcome)
    }
}
