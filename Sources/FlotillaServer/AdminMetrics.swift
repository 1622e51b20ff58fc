import CoreMetrics
import Synchronization

/// The per-operation counters every role exports, declared once as handles with bounded
/// dimensions (the operation names are fixed by the role). Tests pass their own factory. Their
/// latency is a histogram written at scrape time (`LatencyHistogramExposition`).
final class AdminMetrics: Sendable {
    private struct Handles {
        let requests: Counter
        let errors: Counter
    }

    private let handles: [Handles]
    /// `process_*` and `flotilla_build_info`.
    private let process: ProcessMetrics
    /// Totals already exported, so that counters advance by the difference.
    private let exported: Mutex<[(UInt64, UInt64)]>

    init(operations: [String], factory: any MetricsFactory) {
        self.handles = operations.map { name in
            let dimensions = [("operation", name)]
            return Handles(
                requests: Counter(
                    "flotilla_requests_total",
                    help: "Requests handled, by operation.",
                    dimensions: dimensions,
                    factory: factory
                ),
                errors: Counter(
                    "flotilla_request_errors_total",
                    help: "Requests answered with an error, by operation.",
                    dimensions: dimensions,
                    factory: factory
                )
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
            }
        }
    }
}
