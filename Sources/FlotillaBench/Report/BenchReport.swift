import FlotillaCore
import Histogram

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The outcome of one bench run: its settings, counts, latency summary and SLO verdict.
///
/// Encoded as JSON with snake_case keys; optional fields are always present, `null` when they do not apply.
public struct BenchReport: Codable, Sendable, Equatable {
    /// How the run was driven.
    public struct Settings: Codable, Sendable, Equatable {
        public var target: String
        /// "memcache" or "http".
        public var `protocol`: String
        /// "closed" or "open".
        public var mode: String
        /// Open loop: the intended requests per second, in total. Closed loop: nil.
        public var rate: Double?
        public var connections: Int
        public var pipeline: Int
        public var threads: Int
        public var durationSeconds: Double
        public var warmupSeconds: Double
        public var keys: Int
        public var distribution: String
        /// Memcache: the size of the values set. HTTP: nil.
        public var valueSize: Int?
        /// Memcache only: the share of requests that are gets, 0…1.
        public var getRatio: Double?
        /// Memcache only: keys per get.
        public var multiget: Int?
        /// HTTP only: the number of sessions, nil when not used.
        public var sessions: Int?

        public init(
            target: String,
            protocol: String,
            mode: String,
            rate: Double? = nil,
            connections: Int,
            pipeline: Int,
            threads: Int,
            durationSeconds: Double,
            warmupSeconds: Double,
            keys: Int,
            distribution: String,
            valueSize: Int? = nil,
            getRatio: Double? = nil,
            multiget: Int? = nil,
            sessions: Int? = nil
        ) {
            self.target = target
            self.protocol = `protocol`
            self.mode = mode
            self.rate = rate
            self.connections = connections
            self.pipeline = pipeline
            self.threads = threads
            self.durationSeconds = durationSeconds
            self.warmupSeconds = warmupSeconds
            self.keys = keys
            self.distribution = distribution
            self.valueSize = valueSize
            self.getRatio = getRatio
            self.multiget = multiget
            self.sessions = sessions
        }

        enum CodingKeys: String, CodingKey {
            case target
            case `protocol`
            case mode
            case rate
            case connections
            case pipeline
            case threads
            case durationSeconds = "duration_seconds"
            case warmupSeconds = "warmup_seconds"
            case keys
            case distribution
            case valueSize = "value_size"
            case getRatio = "get_ratio"
            case multiget
            case sessions
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(target, forKey: .target)
            try container.encode(`protocol`, forKey: .protocol)
            try container.encode(mode, forKey: .mode)
            try container.encode(rate, forKey: .rate)
            try container.encode(connections, forKey: .connections)
            try container.encode(pipeline, forKey: .pipeline)
            try container.encode(threads, forKey: .threads)
            try container.encode(durationSeconds, forKey: .durationSeconds)
            try container.encode(warmupSeconds, forKey: .warmupSeconds)
            try container.encode(keys, forKey: .keys)
            try container.encode(distribution, forKey: .distribution)
            try container.encode(valueSize, forKey: .valueSize)
            try container.encode(getRatio, forKey: .getRatio)
            try container.encode(multiget, forKey: .multiget)
            try container.encode(sessions, forKey: .sessions)
        }
    }

    /// Latency percentiles, mean and maximum, in microseconds.
    public struct Latency: Codable, Sendable, Equatable {
        public var p50: Double
        public var p90: Double
        public var p95: Double
        public var p99: Double
        public var p99_9: Double
        public var max: Double
        public var mean: Double

        public init(p50: Double, p90: Double, p95: Double, p99: Double, p99_9: Double, max: Double, mean: Double) {
            self.p50 = p50
            self.p90 = p90
            self.p95 = p95
            self.p99 = p99
            self.p99_9 = p99_9
            self.max = max
            self.mean = mean
        }

        /// Summarises a histogram of nanoseconds; all zero when it is empty.
        public init(nanoseconds histogram: Histogram<UInt64>) {
            guard histogram.totalCount > 0 else {
                self.init(p50: 0, p90: 0, p95: 0, p99: 0, p99_9: 0, max: 0, mean: 0)
                return
            }
            func micros(_ percentile: Double) -> Double { BenchReport.microseconds(histogram, percentile: percentile) }
            self.init(
                p50: micros(50),
                p90: micros(90),
                p95: micros(95),
                p99: micros(99),
                p99_9: micros(99.9),
                max: micros(100),
                mean: histogram.mean / 1000
            )
        }
    }

    /// Whether the run met its `--slo`, clause by clause.
    public struct SLOOutcome: Codable, Sendable, Equatable {
        public struct Clause: Codable, Sendable, Equatable {
            /// The clause as written, e.g. `p99<2ms`.
            public var clause: String
            /// Latency in microseconds, success in percent, rate in requests per second.
            public var observed: Double
            public var met: Bool

            public init(clause: String, observed: Double, met: Bool) {
                self.clause = clause
                self.observed = observed
                self.met = met
            }
        }

        public var spec: String
        /// True when every clause is met.
        public var met: Bool
        public var clauses: [Clause]

        public init(spec: String, met: Bool, clauses: [Clause]) {
            self.spec = spec
            self.met = met
            self.clauses = clauses
        }
    }

    public var settings: Settings
    /// Measured time of the timed phase.
    public var elapsedSeconds: Double
    public var requests: UInt64
    public var successes: UInt64
    public var errors: [String: UInt64]
    /// Successes over requests, in percent; 0 when there were no requests.
    public var successPercent: Double
    /// Completed requests per second of `elapsedSeconds`.
    public var throughput: Double
    public var latencyUs: Latency
    /// Memcache only: keys found by gets.
    public var hits: UInt64?
    /// Memcache only: keys not found by gets.
    public var misses: UInt64?
    public var slo: SLOOutcome?

    /// Builds the report. When `slo` is given, evaluates it against the full histogram, so that any percentile
    /// can be bounded, not only the ones summarised in `latencyUs`.
    public init(settings: Settings, totals: BenchTotals, elapsedSeconds: Double, slo: SLOSpec?) {
        self.settings = settings
        self.elapsedSeconds = elapsedSeconds
        requests = totals.requests
        successes = totals.successes
        errors = totals.errors
        successPercent = requests == 0 ? 0 : Double(successes) / Double(requests) * 100
        throughput = elapsedSeconds > 0 ? Double(requests) / elapsedSeconds : 0
        latencyUs = Latency(nanoseconds: totals.latency)
        let isMemcache = settings.protocol == BenchTarget.Kind.memcache.rawValue
        hits = isMemcache ? totals.hits : nil
        misses = isMemcache ? totals.misses : nil
        if let slo {
            let histogram = totals.latency
            let verdicts = slo.evaluate(
                latencyMicroseconds: { Self.microseconds(histogram, percentile: $0) },
                successPercent: successPercent,
                ratePerSecond: throughput
            )
            self.slo = SLOOutcome(
                spec: slo.description,
                met: verdicts.allSatisfy(\.met),
                clauses: verdicts.map { SLOOutcome.Clause(clause: $0.clause, observed: $0.observed, met: $0.met) }
            )
        } else {
            self.slo = nil
        }
    }

    /// A percentile (0–100; 100 is the exact maximum) of a histogram of nanoseconds, in microseconds.
    static func microseconds(_ histogram: Histogram<UInt64>, percentile: Double) -> Double {
        guard histogram.totalCount > 0 else { return 0 }
        let nanoseconds = percentile >= 100 ? histogram.maxRecorded : histogram.valueAtPercentile(percentile)
        return Double(nanoseconds) / 1000
    }

    enum CodingKeys: String, CodingKey {
        case settings
        case elapsedSeconds = "elapsed_seconds"
        case requests
        case successes
        case errors
        case successPercent = "success_percent"
        case throughput
        case latencyUs = "latency_us"
        case hits
        case misses
        case slo
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(settings, forKey: .settings)
        try container.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try container.encode(requests, forKey: .requests)
        try container.encode(successes, forKey: .successes)
        try container.encode(errors, forKey: .errors)
        try container.encode(successPercent, forKey: .successPercent)
        try container.encode(throughput, forKey: .throughput)
        try container.encode(latencyUs, forKey: .latencyUs)
        try container.encode(hits, forKey: .hits)
        try container.encode(misses, forKey: .misses)
        try container.encode(slo, forKey: .slo)
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonString() -> String {
        BenchJSON.string(self)
    }
}

/// The one JSON encoding bench output uses.
enum BenchJSON {
    static func string(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // A stray infinity or NaN must not lose the whole report.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf",
            negativeInfinity: "-inf",
            nan: "nan"
        )
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
