import Logging
import Metrics
import NIOCore

/// What the process gives every role: its event loops, readiness and listeners, the recorder of
/// its operations, the metrics factory behind `/metrics`, its logger and the drain timeout.
public struct RoleEnvironment: Sendable {
    /// One event-loop group per process, sized by `--threads`.
    public var group: any EventLoopGroup
    /// Event loops in `group`.
    public var threads: Int
    /// Readiness and bound listeners, reported on `/readyz`, `/v1/status` and the ready file.
    public var readiness: Readiness
    /// Per-operation counts, errors and latency, in `Role.Operation` order.
    public var recorder: OperationRecorder
    public var metricsFactory: any MetricsFactory
    public var logger: Logger
    /// Longest wait for open requests on shutdown (`--drain-timeout`).
    public var drainTimeout: Duration
}
