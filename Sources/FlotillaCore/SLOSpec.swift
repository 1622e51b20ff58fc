/// A service-level objective as declared with `--slo`: `p99<1ms,success>=99.9%,rate>=1000/s`.
///
/// Latency clauses bound a percentile (`p50`, `p95`, `p99`, `p99.9`, `max`) from above; `success`
/// bounds the ratio of requests answered without error from below; `rate` bounds throughput.
public struct SLOSpec: Sendable, Hashable, CustomStringConvertible {
    public enum Objective: Sendable, Hashable {
        /// The given percentile (0–100) of latency must be below `microseconds`.
        case latency(percentile: Double, microseconds: Double)
        /// The success ratio, in percent, must be at least this.
        case success(percent: Double)
        /// Requests per second must be at least this.
        case rate(perSecond: Double)
    }

    public struct Clause: Sendable, Hashable {
        public var text: String
        public var objective: Objective
    }

    public var clauses: [Clause]

    public var description: String { clauses.map(\.text).joined(separator: ",") }

    public struct ParseError: Error, CustomStringConvertible {
        public var clause: String
        public var reason: String
        public var description: String { "invalid SLO clause '\(clause)': \(reason)" }
    }

    public init(parsing text: String) throws(ParseError) {
        var clauses: [Clause] = []
        for raw in text.split(separator: ",") {
            let clause = String(raw).trimmingSpaces
            clauses.append(Clause(text: clause, objective: try Self.parseClause(clause)))
        }
        guard !clauses.isEmpty else {
            throw ParseError(clause: text, reason: "expected e.g. 'p99<1ms,success>=99.9%'")
        }
        self.clauses = clauses
    }

    private static func parseClause(_ clause: String) throws(ParseError) -> Objective {
        if clause.hasPrefix("success>=") {
            let number = clause.dropFirst("success>=".count).replacingPercent
            guard let value = Double(number), (0...100).contains(value) else {
                throw ParseError(
                    clause: clause,
                    reason: "success takes a percentage from 0 to 100, e.g. success>=99.9%"
                )
            }
            return .success(percent: value)
        }
        if clause.hasPrefix("rate>=") {
            var number = Substring(clause.dropFirst("rate>=".count))
            if number.hasSuffix("/s") { number = number.dropLast(2) }
            guard let value = Double(number), value >= 0 else {
                throw ParseError(clause: clause, reason: "rate takes requests per second, e.g. rate>=1000/s")
            }
            return .rate(perSecond: value)
        }
        guard let less = clause.firstIndex(of: "<") else {
            throw ParseError(clause: clause, reason: "expected pNN<DURATION, success>=P% or rate>=N/s")
        }
        let name = clause[..<less]
        let bound = String(clause[clause.index(after: less)...])
        let percentile: Double
        if name == "max" {
            percentile = 100
        } else if name.hasPrefix("p"), let value = Double(name.dropFirst()), value > 0, value < 100 {
            percentile = value
        } else {
            throw ParseError(clause: clause, reason: "latency percentile must be p50, p99, p99.9 … or max")
        }
        guard let duration = DurationText.parse(bound) else {
            throw ParseError(clause: clause, reason: "latency bound must be a duration such as 500us, 1ms or 2s")
        }
        let micros = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
        return .latency(percentile: percentile, microseconds: micros)
    }

    /// What was observed for one clause, and whether it holds.
    public struct Verdict: Sendable, Hashable {
        public var clause: String
        public var observed: Double
        public var met: Bool
    }

    /// Evaluates every clause. `latencyMicroseconds` gives a percentile (0–100) of latency.
    public func evaluate(
        latencyMicroseconds: (Double) -> Double,
        successPercent: Double,
        ratePerSecond: Double
    ) -> [Verdict] {
        clauses.map { clause in
            switch clause.objective {
            case .latency(let percentile, let bound):
                let observed = latencyMicroseconds(percentile)
                return Verdict(clause: clause.text, observed: observed, met: observed < bound)
            case .success(let percent):
                return Verdict(clause: clause.text, observed: successPercent, met: successPercent >= percent)
            case .rate(let perSecond):
                return Verdict(clause: clause.text, observed: ratePerSecond, met: ratePerSecond >= perSecond)
            }
        }
    }
}

extension Substring {
    fileprivate var replacingPercent: Substring { hasSuffix("%") ? dropLast() : self }
}
