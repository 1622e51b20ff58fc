import Histogram

/// `flotilla_request_duration_seconds`, the service time of every role's requests, as a
/// Prometheus histogram by operation.
///
/// The hot path records each request in its event loop's HdrHistogram and nowhere else (no lock,
/// no atomic); a scrape merges them and reads the cumulative count at each bucket bound from the
/// merged histogram. swift-prometheus' own histogram takes a lock for every observation and
/// cannot be filled from counts, so this one family is written here, in the text format its
/// registry emits. Counts are cumulative since start, as Prometheus expects of a histogram; the
/// `_sum` is exact; a bucket's bound holds within the HdrHistogram's two significant digits
/// (a request of 1.004 ms may count in the `le="0.001"` bucket).
struct LatencyHistogramExposition {
    static let family = "flotilla_request_duration_seconds"
    static let help = "Service time of requests, by operation, from request read to reply written."

    /// The bucket bounds: 10 µs to 10 s, 1–2.5–5 per decade, as `le` label text and nanoseconds.
    static let bounds: [(label: String, nanoseconds: UInt64)] = [
        ("1e-5", 10_000), ("2.5e-5", 25_000), ("5e-5", 50_000),
        ("1e-4", 100_000), ("2.5e-4", 250_000), ("5e-4", 500_000),
        ("1e-3", 1_000_000), ("2.5e-3", 2_500_000), ("5e-3", 5_000_000),
        ("1e-2", 10_000_000), ("2.5e-2", 25_000_000), ("5e-2", 50_000_000),
        ("1e-1", 100_000_000), ("2.5e-1", 250_000_000), ("5e-1", 500_000_000),
        ("1e0", 1_000_000_000), ("2.5e0", 2_500_000_000), ("5e0", 5_000_000_000),
        ("10", 10_000_000_000),
    ]

    /// The family's HELP, TYPE and samples for `snapshots`, one label set per operation.
    static func render(_ snapshots: [OperationSnapshot]) -> String {
        var text = "# HELP \(family) \(help)\n# TYPE \(family) histogram\n"
        for snapshot in snapshots {
            let operation = "operation=\"\(escaped(snapshot.name))\""
            let total = snapshot.histogram.totalCount
            for bound in bounds {
                let count = total == 0 ? 0 : snapshot.histogram.count(within: 0...bound.nanoseconds)
                text += "\(family)_bucket{\(operation),le=\"\(bound.label)\"} \(count)\n"
            }
            text += "\(family)_bucket{\(operation),le=\"+Inf\"} \(total)\n"
            text += "\(family)_sum{\(operation)} \(Double(snapshot.sumNanoseconds) / 1e9)\n"
            text += "\(family)_count{\(operation)} \(total)\n"
        }
        return text
    }

    /// A label value in the text format: backslash, double quote and line feed escaped.
    private static func escaped(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }
}
