import Foundation

/// The `--json` report of one `flotilla bench` run, as the CLI contract spells it (snake_case on the wire).
struct BenchJSONReport: Decodable {
    struct Settings: Decodable {
        var target: String
        var `protocol`: String
        var mode: String
        var rate: Double?
        var connections: Int
        var pipeline: Int
        var threads: Int
        var durationSeconds: Double
        var warmupSeconds: Double
        var keys: Int
        var distribution: String
        var valueSize: Int?
        var getRatio: Double?
        var multiget: Int?
        var sessions: Int?
    }

    /// Microseconds.
    struct Latency: Decodable {
        var p50: Double
        var p90: Double
        var p95: Double
        var p99: Double
        /// `p99_9` on the wire.
        var p999: Double
        var max: Double
        var mean: Double
    }

    struct SLO: Decodable {
        struct Clause: Decodable {
            var clause: String
            var met: Bool
        }

        var spec: String
        var met: Bool
        var clauses: [Clause]
    }

    var settings: Settings
    var elapsedSeconds: Double
    var requests: Int
    var successes: Int
    var errors: [String: Int]
    var successPercent: Double
    var throughput: Double
    var latencyUs: Latency
    var hits: Int?
    var misses: Int?
    var slo: SLO?

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    static func decode(_ text: String) throws -> BenchJSONReport {
        try decoder.decode(BenchJSONReport.self, from: Data(text.utf8))
    }

    /// The keys the contract requires, per object; compared against the raw JSON so that a misspelt or missing key
    /// is named rather than decoded as nil.
    static let requiredKeys: [String: Set<String>] = [
        "": [
            "settings", "elapsed_seconds", "requests", "successes", "errors", "success_percent", "throughput",
            "latency_us", "hits", "misses", "slo",
        ],
        "settings": [
            "target", "protocol", "mode", "rate", "connections", "pipeline", "threads", "duration_seconds",
            "warmup_seconds", "keys", "distribution", "value_size", "get_ratio", "multiget", "sessions",
        ],
        "latency_us": ["p50", "p90", "p95", "p99", "p99_9", "max", "mean"],
        "slo": ["spec", "met", "clauses"],
    ]

    /// The contract keys missing from a report's JSON text, as `object.key`.
    static func missingKeys(in text: String) throws -> [String] {
        let root = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
        var missing: [String] = []
        for (object, keys) in requiredKeys.sorted(by: { $0.key < $1.key }) {
            let value: Any? = object.isEmpty ? root : root[object]
            guard let dictionary = value as? [String: Any] else {
                if !(value is NSNull) { missing.append("\(object) (not an object)") }
                continue
            }
            for key in keys.sorted() where dictionary.index(forKey: key) == nil {
                missing.append(object.isEmpty ? key : "\(object).\(key)")
            }
        }
        return missing
    }
}

/// The `--compare --json` report.
struct BenchJSONComparison: Decodable {
    struct Summary: Decodable {
        var throughput: Double
        var p50: Double
        var p90: Double
        var p99: Double
        /// `p99_9` on the wire.
        var p999: Double
        var max: Double
        var successPercent: Double
    }

    struct Side: Decodable {
        var target: String
        var rounds: [BenchJSONReport]
        var median: Summary
    }

    var a: Side
    var b: Side
    var ratio: Summary

    static func decode(_ text: String) throws -> BenchJSONComparison {
        try BenchJSONReport.decoder.decode(BenchJSONComparison.self, from: Data(text.utf8))
    }
}
