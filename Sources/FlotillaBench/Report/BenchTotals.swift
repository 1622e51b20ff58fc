import Histogram

/// Everything measured in one run after warm-up. The engine keeps one per event loop and merges them with `add`.
public struct BenchTotals: Sendable {
    /// The slowest latency the histogram tracks: one hour, in nanoseconds.
    public static let highestLatencyNanoseconds: UInt64 = 3_600_000_000_000

    /// Latency of every completed request (success or error), nanoseconds: 1 ns … 1 hour, 3 significant digits.
    public var latency: Histogram<UInt64>
    public var successes: UInt64 = 0
    /// Failed requests by kind: "timeout", "closed", "protocol", "error", "client_error",
    /// "server_error", "not_stored", "http_4xx", "http_5xx", and the requests owed and not made
    /// (`BenchAccounting`): "not_sent" (open loop), "unavailable" (closed loop). Any string key is
    /// allowed.
    public var errors: [String: UInt64] = [:]
    /// Memcache: keys found by gets.
    public var hits: UInt64 = 0
    /// Memcache: keys not found by gets.
    public var misses: UInt64 = 0

    public init() {
        latency = Self.makeLatencyHistogram()
    }

    /// An empty histogram with the layout every `BenchTotals` uses, so that any two can be merged.
    public static func makeLatencyHistogram() -> Histogram<UInt64> {
        Histogram(
            lowestDiscernibleValue: 1,
            highestTrackableValue: highestLatencyNanoseconds,
            numberOfSignificantValueDigits: .three
        )
    }

    /// Records one latency, clamped to 1 ns … 1 hour.
    public mutating func record(nanoseconds: UInt64) {
        _ = latency.record(Swift.min(Swift.max(nanoseconds, 1), Self.highestLatencyNanoseconds))
    }

    /// Counts `count` failed requests of `kind` (their latency is recorded separately with `record`).
    public mutating func recordError(_ kind: String, count: UInt64 = 1) {
        errors[kind, default: 0] += count
    }

    /// Merges `other` into these totals.
    public mutating func add(_ other: BenchTotals) {
        latency.add(other.latency)
        successes += other.successes
        errors.merge(other.errors, uniquingKeysWith: +)
        hits += other.hits
        misses += other.misses
    }

    /// Failed requests of every kind.
    public var errorCount: UInt64 { errors.values.reduce(0, +) }

    /// Completed requests: successes and errors.
    public var requests: UInt64 { successes + errorCount }
}
