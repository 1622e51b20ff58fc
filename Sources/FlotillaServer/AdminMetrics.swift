import CoreMetrics
import Synchronization

/// The per-operation metrics every role exports, declared once as handles with bounded
/// dimensions (the operation names are fixed by the role). Tests pass their own factory.
final class AdminMetrics: Sendable {
    private struct Handles {
        let requests: Counter
        let errors: Counter
        let p50: Gauge
        let p99: Gauge
        let p999: Gauge
    }

    private let handles: [Handles]
    /// `process_*` and `flotilla_build_info`.
    private let process: ProcessMetrics
    /// Totals already exported, so that counters advance by the difference.
    private let exported: Mutex<[(UInt64, UInt64)]>

    init(operations: [String], factory: any MetricsFactory) {
        MetricHelp.describe([
            "flotilla_requests_total": "Requests handled, by operation.",
            "flotilla_request_errors_total": "Requests answered with an error, by operation.",
            "flotilla_request_latency_p50_seconds": "Median service time since start, by operation.",
            "flotilla_request_latency_p99_seconds": "99th percentile service time since start, by operation.",
            "flotilla_request_latency_p999_seconds": "99.9th percentile service time since start, by operation.",
        ])
        self.handles = operations.map { name in
            let dimensions = [("operation", name)]
            return Handles(
                requests: Counter(label: "flotilla_requests_total", dimensions: dimensions, factory: factory),
                errors: Counter(label: "flotilla_request_errors_total", dimensions: dimensions, factory: factory),
                p50: Gauge(label: "flotilla_request_latency_p50_seconds", dimensions: dimensions, factory: factory),
                p99: Gauge(label: "flotilla_request_latency_p99_seconds", dimensions: dimensions, factory: factory),
                p999: Gauge(label: "flotilla_request_latency_p999_seconds", dimensions: dimensions, factory: factory)
            )
        }
        self.exported = Mutex(Array(repeating: (0, 0), count: operations.count))
        self.process = ProcessMetrics(factory: factory, version: FlotillaVersion.current)
    }

    func update(with snapshots: [OperationSnapshot]) {
        process.update()
        exported.withLock { exported in
            for (index, snapshot) in snapshots.enumerated() where index < handles.count {
                let handle = handles[index]
                let (requests, errors) = exported[index]
                if snapshot.count > requests { handle.requests.increment(by: Int64(snapshot.count - requests)) }
                if snapshot.errors > errors { handle.errors.increment(by: Int64(snapshot.errors - errors)) }
                exported[index] = (max(requests, snapshot.count), max(errors, snapshot.errors))
                handle.p50.record(snapshot.latencyMicroseconds(50) / 1e6)
                handle.p99.record(snapshot.latencyMicroseconds(99) / 1e6)
                handle.p999.record(snapshot.latencyMicroseconds(99.9) / 1e6)
            }
        }
    }
}
