import CoreMetrics
import Synchronization

/// The bytes a listener holds for requests it has received and not finished reading, across all
/// of its connections, held to a budget (`--request-memory`). A connection charges what its
/// read buffer holds after each read is processed; a connection whose charge would take the
/// total past the limit is refused (`SERVER_ERROR out of memory reading request`, then closed),
/// so that a thousand clients each holding a half-sent 1 MB value cannot take the process past
/// `--memory` by a gigabyte. The charges are a few atomic operations per read.
public final class RequestMemory: Sendable {
    public let limit: Int
    private let used = Atomic<Int>(0)
    private let refusals = Atomic<UInt64>(0)
    private let metrics: Metrics?

    /// `flotilla_request_memory_bytes`, `flotilla_request_memory_limit_bytes` and
    /// `flotilla_request_memory_refused_total`, recorded by `refreshMetrics()` (before each scrape),
    /// not on the request path.
    private final class Metrics: Sendable {
        let bytes: Gauge
        let limit: Gauge
        let refused: MonotonicCounter

        init(factory: any MetricsFactory) {
            bytes = Gauge(
                "flotilla_request_memory_bytes",
                help: "Bytes held for requests not yet fully received, all connections.",
                factory: factory
            )
            limit = Gauge(
                "flotilla_request_memory_limit_bytes",
                help: "The bound on those bytes (--request-memory).",
                factory: factory
            )
            refused = MonotonicCounter(
                "flotilla_request_memory_refused_total",
                help: "Clients refused for passing --request-memory.",
                factory: factory
            )
        }
    }

    public init(limit: Int, metricsFactory: (any MetricsFactory)? = nil) {
        self.limit = limit
        self.metrics = metricsFactory.map(Metrics.init)
    }

    /// Records the gauges and the refusals since the last call.
    public func refreshMetrics() {
        guard let metrics else { return }
        metrics.bytes.record(bytes)
        metrics.limit.record(limit)
        metrics.refused.advance(to: refused)
    }

    /// What the connections hold now.
    public var bytes: Int { used.load(ordering: .relaxed) }

    /// Connections refused since start.
    public var refused: UInt64 { refusals.load(ordering: .relaxed) }

    /// The reply to a refused connection, as memcached words its allocation failures.
    public static let refusal: StaticString = "SERVER_ERROR out of memory reading request\r\n"

    /// One connection's charge against the budget.
    public struct Share {
        private let memory: RequestMemory
        private var held = 0

        public init(of memory: RequestMemory) {
            self.memory = memory
        }

        /// Charges what the connection's read buffer holds now. False when that would pass the
        /// budget: the connection is to be refused, and its whole charge is returned.
        public mutating func charge(_ bytes: Int) -> Bool {
            if memory.charge(&held, to: bytes) { return true }
            release()
            return false
        }

        /// The connection closed, or dropped what it held.
        public mutating func release() {
            _ = memory.charge(&held, to: 0)
        }
    }

    /// A connection's charge goes from `held` to `bytes`. False when growing it would take the
    /// total past the limit: then `held` stays as it was, and the connection is to be refused.
    public func charge(_ held: inout Int, to bytes: Int) -> Bool {
        let delta = bytes - held
        guard delta != 0 else { return true }
        if delta < 0 {
            used.wrappingSubtract(-delta, ordering: .relaxed)
            held = bytes
            return true
        }
        let total = used.wrappingAdd(delta, ordering: .relaxed).newValue
        guard total <= limit else {
            used.wrappingSubtract(delta, ordering: .relaxed)
            refusals.wrappingAdd(1, ordering: .relaxed)
            return false
        }
        held = bytes
        return true
    }
}
