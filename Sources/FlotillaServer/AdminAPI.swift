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
        let snapshots = await recorder.snapshot()
        metrics.update(with: snapshots)
        let text = registry.emitToString() + LatencyHistogramExposition.render(snapshots)
        return .ok(.init(body: .plainText(HTTPBody(text))))
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
            listeners: .init(additionalProperties: readiness.listeners),
            operations: report.operations.map { operation in
                Components.Schemas.OperationStats(
                    name: operation.snapshot.name,
                    count: Int64(clamping: operation.snapshot.count),
                    errors: Int64(clamping: operation.snapshot.errors),
                    successRatio: operation.snapshot.successRatio,
                    ratePerSecond: operation.rate,
                    latencyMicroseconds: .init(
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
