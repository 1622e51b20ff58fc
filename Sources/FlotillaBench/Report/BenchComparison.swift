/// `flotilla bench --compare A B`: rounds alternated A B A B …, the median of each side, and the ratios B/A.
public struct BenchComparison: Codable, Sendable, Equatable {
    /// Medians over rounds: throughput in requests/s, latencies in microseconds, success in percent.
    public struct Medians: Codable, Sendable, Equatable {
        public var throughput: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p99_9: Double
        public var max: Double
        public var successPercent: Double

        enum CodingKeys: String, CodingKey {
            case throughput
            case p50
            case p90
            case p99
            case p99_9
            case max
            case successPercent = "success_percent"
        }
    }

    /// One side of the comparison: its target, every round, and their medians.
    public struct Side: Codable, Sendable, Equatable {
        public var target: String
        public var rounds: [BenchReport]
        public var median: Medians

        public init(target: String, rounds: [BenchReport], median: Medians) {
            self.target = target
            self.rounds = rounds
            self.median = median
        }
    }

    public var a: Side
    public var b: Side
    /// `b.median / a.median` field by field, 0 where a's is 0.
    public var ratio: Medians

    /// Both sides must have at least one round; each side's target is that of its first round.
    public init(a: [BenchReport], b: [BenchReport]) {
        precondition(!a.isEmpty && !b.isEmpty, "a comparison needs at least one round of each side")
        self.a = Side(target: a[0].settings.target, rounds: a, median: Medians(of: a))
        self.b = Side(target: b[0].settings.target, rounds: b, median: Medians(of: b))
        ratio = Medians.ratio(self.b.median, over: self.a.median)
    }

    /// The median of `values`; the mean of the two middle values for an even count, 0 for none.
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonString() -> String {
        BenchJSON.string(self)
    }
}

extension BenchComparison {
    /// A table of medians, with columns A, B and B/A, followed by one line per round in the order they ran.
    public var text: String {
        let rows: [(String, (Medians) -> String)] = [
            ("throughput", { BenchFormat.rate($0.throughput) }),
            ("p50", { BenchFormat.duration(microseconds: $0.p50) }),
            ("p90", { BenchFormat.duration(microseconds: $0.p90) }),
            ("p99", { BenchFormat.duration(microseconds: $0.p99) }),
            ("p99.9", { BenchFormat.duration(microseconds: $0.p99_9) }),
            ("max", { BenchFormat.duration(microseconds: $0.max) }),
            ("success", { BenchFormat.percent($0.successPercent) }),
        ]
        let ratioFields: [KeyPath<Medians, Double>] = [
            \.throughput, \.p50, \.p90, \.p99, \.p99_9, \.max, \.successPercent,
        ]
        var table: [[String]] = [
            ["median of \(a.rounds.count) / \(b.rounds.count) rounds", "A \(a.target)", "B \(b.target)", "B/A"]
        ]
        for (row, field) in zip(rows, ratioFields) {
            let ratio = ratio[keyPath: field]
            table.append([
                row.0, row.1(a.median), row.1(b.median), ratio == 0 ? "–" : BenchFormat.fixed(ratio, decimals: 3),
            ])
        }
        let widths = (0..<4).map { column in table.map { $0[column].count }.max() ?? 0 }
        var lines = table.map { cells in
            var line = ""
            for (cell, width) in zip(cells, widths) {
                line += BenchFormat.pad(cell, to: width + 2)
            }
            return String(line.reversed().drop(while: { $0 == " " }).reversed())
        }
        lines.append("")
        for index in 0..<Swift.max(a.rounds.count, b.rounds.count) {
            for (name, side) in [("A", a), ("B", b)] where index < side.rounds.count {
                lines.append("round \(index + 1) \(name)   \(Self.roundSummary(side.rounds[index]))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// "84,392 req/s   p50 312 µs   p99 1.02 ms   max 8.10 ms   success 100.000 %".
    static func roundSummary(_ report: BenchReport) -> String {
        [
            BenchFormat.rate(report.throughput),
            "p50 \(BenchFormat.duration(microseconds: report.latencyUs.p50))",
            "p99 \(BenchFormat.duration(microseconds: report.latencyUs.p99))",
            "max \(BenchFormat.duration(microseconds: report.latencyUs.max))",
            "success \(BenchFormat.percent(report.successPercent))",
        ].joined(separator: "   ")
    }
}

/// Built from rounds, or from two other medians; the memberwise initializer stays synthesized.
extension BenchComparison.Medians {
    /// The median of each field over `reports`; all zero when there are none.
    public init(of reports: [BenchReport]) {
        func median(_ field: (BenchReport) -> Double) -> Double { BenchComparison.median(reports.map(field)) }
        self.init(
            throughput: median(\.throughput),
            p50: median(\.latencyUs.p50),
            p90: median(\.latencyUs.p90),
            p99: median(\.latencyUs.p99),
            p99_9: median(\.latencyUs.p99_9),
            max: median(\.latencyUs.max),
            successPercent: median(\.successPercent)
        )
    }

    /// `b / a` field by field, 0 where `a` is 0.
    public static func ratio(_ b: Self, over a: Self) -> Self {
        func divide(_ field: KeyPath<Self, Double>) -> Double {
            a[keyPath: field] == 0 ? 0 : b[keyPath: field] / a[keyPath: field]
        }
        return Self(
            throughput: divide(\.throughput),
            p50: divide(\.p50),
            p90: divide(\.p90),
            p99: divide(\.p99),
            p99_9: divide(\.p99_9),
            max: divide(\.max),
            successPercent: divide(\.successPercent)
        )
    }
}
