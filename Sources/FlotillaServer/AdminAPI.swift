import FlotillaAdminAPI
import FlotillaCore
import Histogram
import OpenAPIRuntime
import Prometheus

/// The admin API's handlers, implementing the protocol generated from `openapi.yaml`.
struct AdminAPI: APIProtocol {
    let role: RoleInfo
    let readiness: Readiness
    let recorder: OperationRecorder
    let slo: SLOSpec?
    let registry: PrometheusCollectorRegistry
    let metrics: AdminMetrics
    let rates: RateWindow
    /// The role's shards, when it has some (cache-proxy).
    let shards: (any ShardAdminSource)?
    let shardRates: RateWindow
    let started: ContinuousClock.Instant
    /// Lets the role refresh its gauges just before a scrape.
    let refreshMetrics: @Sendable () async -> Void

    func getHealth(_ input: Operations.GetHealth.Input) async throws -> Operations.GetHealth.Output {
        .ok(.init(body: .json(.init(status: .alive))))
    }

    func getReadiness(_ input: Operations.GetReadiness.Input) async throws -> Operations.GetReadiness.Output {
        switch readiness.current {
        case .ready:
            return .ok(.init(body: .json(.init(status: .ready))))
        case .starting:
            return .serviceUnavailable(.init(body: .json(.init(status: .starting))))
        case .draining:
            return .serviceUnavailable(.init(body: .json(.init(status: .draining))))
        }
    }

    func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        await refreshMetrics()
        metrics.update(with: await recorder.snapshot())
        return .ok(.init(body: .plainText(HTTPBody(registry.emitToString()))))
    }

    func getStatus(_ input: Operations.GetStatus.Input) async throws -> Operations.GetStatus.Output {
        let report = await StatusReport.make(
            recorder: recorder,
            rates: rates,
            slo: slo
        )
        let uptime = ContinuousClock.now - started
        let state: Components.Schemas.Status.StatePayload =
            switch readiness.current {
            case .starting: .starting
            case .ready: .ready
            case .draining: .draining
            }
        let status = Components.Schemas.Status(
            role: role.role,
            version: role.version,
            uptimeSeconds: uptime.inSeconds,
            state: state,
            settings: .init(additionalProperties: role.settings),
            operations: report.operations.map { operation in
                Components.Schemas.OperationStats(
                    name: operation.snapshot.name,
                    count: Int64(clamping: operation.snapshot.count),
                    errors: Int64(clamping: operation.snapshot.errors),
                    successRatio: operation.snapshot.successRatio,
                    ratePerSecond: operation.rate,
                    latency: .init(
                        p50: operation.snapshot.latencyMicroseconds(50),
                        p95: operation.snapshot.latencyMicroseconds(95),
                        p99: operation.snapshot.latencyMicroseconds(99),
                        p999: operation.snapshot.latencyMicroseconds(99.9),
                        max: operation.snapshot.latencyMicroseconds(100)
                    )
                )
            },
            slo: report.verdicts.map { verdicts in
                Components.Schemas.SLOVerdict(
                    spec: slo?.description ?? "",
                    met: verdicts.allSatisfy(\.met),
                    objectives: verdicts.map { .init(objective: $0.clause, observed: $0.observed, met: $0.met) }
                )
            }
        )
        return .ok(.init(body: .json(status)))
    }

    func getShards(_ input: Operations.GetShards.Input) async throws -> Operations.GetShards.Output {
        guard let shards else {
            return .notFound(.init(body: .json(.init(error: "the \(role.role) role has no shards"))))
        }
        let states = await shards.shardStates()
        let rates = shardRates.rates(current: states.map(\.traffic.count))
        let list = zip(states, rates).map { state, rate in
            Components.Schemas.ShardState(
                address: state.address,
                state: state.up ? .up : .down,
                requests: Int64(clamping: state.traffic.count),
                errors: Int64(clamping: state.traffic.errors),
                ratePerSecond: rate,
                latency: .init(
                    p50: state.traffic.latencyMicroseconds(50),
                    p95: state.traffic.latencyMicroseconds(95),
                    p99: state.traffic.latencyMicroseconds(99),
                    p999: state.traffic.latencyMicroseconds(99.9),
                    max: state.traffic.latencyMicroseconds(100)
                ),
                outstanding: Int64(state.outstanding),
                pendingHints: Int64(state.pendingHints),
                hintsReplayed: Int64(clamping: state.hintsReplayed),
                timesMarkedDown: Int64(clamping: state.timesMarkedDown)
            )
        }
        return .ok(.init(body: .json(.init(shards: list))))
    }

    func getRoute(_ input: Operations.GetRoute.Input) async throws -> Operations.GetRoute.Output {
        guard let shards else {
            return .notFound(.init(body: .json(.init(error: "the \(role.role) role has no shards"))))
        }
        let key = input.query.key
        guard (1...250).contains(key.utf8.count) else {
            return .badRequest(.init(body: .json(.init(error: "key must be 1 to 250 bytes, got \(key.utf8.count)"))))
        }
        return .ok(.init(body: .json(.init(key: key, shards: shards.route(key: key)))))
    }
}

/// Operations with their rates, and the SLO verdict over all of them.
struct StatusReport {
    struct Operation {
        var snapshot: OperationSnapshot
        var rate: Double
    }

    var operations: [Operation]
    var verdicts: [SLOSpec.Verdict]?

    static func make(recorder: OperationRecorder, rates: RateWindow, slo: SLOSpec?) async -> StatusReport {
        let snapshots = await recorder.snapshot()
        let perOperation = rates.rates(current: snapshots.map(\.count))
        let operations = zip(snapshots, perOperation)
            .map { Operation(snapshot: $0, rate: $1) }
            .filter { $0.snapshot.count > 0 }
        var verdicts: [SLOSpec.Verdict]?
        if let slo {
            var all = OperationSnapshot(name: "all")
            for snapshot in snapshots {
                all.count += snapshot.count
                all.errors += snapshot.errors
                all.histogram.add(snapshot.histogram)
            }
            verdicts = slo.evaluate(
                latencyMicroseconds: { all.latencyMicroseconds($0) },
                successPercent: all.successRatio * 100,
                ratePerSecond: perOperation.reduce(0, +)
            )
        }
        return StatusReport(operations: operations, verdicts: verdicts)
    }
}
