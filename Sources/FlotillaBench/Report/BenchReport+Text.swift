extension BenchReport {
    /// A human-readable block: target and settings, counts, latency and, with an SLO, its verdict.
    public var text: String {
        var lines: [(String, String)] = []
        lines.append(("target", "\(settings.target)   \(settingsSummary)"))
        lines.append(("workload", workloadSummary))
        let elapsed = BenchFormat.fixed(elapsedSeconds, decimals: 2)
        let warmup = BenchFormat.fixed(settings.warmupSeconds, decimals: 2)
        lines.append(("duration", "\(elapsed) s (warm-up \(warmup) s)"))
        lines.append(("requests", "\(BenchFormat.grouped(requests))   \(BenchFormat.rate(throughput))"))
        lines.append(("success", "\(BenchFormat.percent(successPercent))   errors: \(errorSummary)"))
        if let hits, let misses {
            let gets = hits + misses
            var line = "\(BenchFormat.grouped(hits)) of \(BenchFormat.grouped(gets)) gets"
            if gets > 0 {
                line += " (\(BenchFormat.fixed(Double(hits) / Double(gets) * 100, decimals: 1)) %)"
            }
            lines.append(("hits", line))
        }
        let latency = [
            ("p50", latencyUs.p50), ("p90", latencyUs.p90), ("p95", latencyUs.p95), ("p99", latencyUs.p99),
            ("p99.9", latencyUs.p99_9), ("max", latencyUs.max), ("mean", latencyUs.mean),
        ]
        lines.append(
            (
                "latency",
                latency.map { "\($0.0) \(BenchFormat.duration(microseconds: $0.1))" }.joined(separator: "   ")
            )
        )
        if let slo {
            let clauses = slo.clauses.map { clause in
                "\(clause.clause): \(Self.observedText(clause)) \(clause.met ? "✓" : "✗")"
            }
            lines.append(("slo", (clauses + [slo.met ? "→ met" : "→ missed"]).joined(separator: "   ")))
        }
        return lines.map { BenchFormat.pad($0.0, to: 13) + $0.1 }.joined(separator: "\n")
    }

    /// "closed loop, 32 connections × pipeline 1, 2 threads" or "open loop at 5,000 req/s, …".
    var settingsSummary: String {
        var parts: [String] = []
        if settings.mode == "open", let rate = settings.rate {
            parts.append("open loop at \(BenchFormat.rate(rate))")
        } else {
            parts.append("\(settings.mode) loop")
        }
        parts.append(
            "\(BenchFormat.count(settings.connections, "connection")) × pipeline \(settings.pipeline)"
        )
        parts.append(BenchFormat.count(settings.threads, "thread"))
        if let sessions = settings.sessions {
            parts.append(BenchFormat.count(sessions, "session"))
        }
        return parts.joined(separator: ", ")
    }

    /// "100,000 keys, zipf:0.99, gets 90.0 %, values 100 B, multiget 4".
    var workloadSummary: String {
        var parts = [BenchFormat.count(settings.keys, "key"), settings.distribution]
        if let getRatio = settings.getRatio {
            parts.append("gets \(BenchFormat.fixed(getRatio * 100, decimals: 1)) %")
        }
        if let valueSize = settings.valueSize {
            parts.append("values \(BenchFormat.grouped(UInt64(Swift.max(valueSize, 0)))) B")
        }
        if let multiget = settings.multiget {
            parts.append("multiget \(multiget)")
        }
        return parts.joined(separator: ", ")
    }

    /// "none" or "timeout 3, closed 1", most frequent first.
    var errorSummary: String {
        let kinds = errors.filter { $0.value > 0 }.sorted { ($1.value, $0.key) < ($0.value, $1.key) }
        guard !kinds.isEmpty else { return "none" }
        return kinds.map { "\($0.key) \(BenchFormat.grouped($0.value))" }.joined(separator: ", ")
    }

    /// The observed value of an SLO clause in its unit: a duration, a percentage or a rate.
    static func observedText(_ clause: SLOOutcome.Clause) -> String {
        if clause.clause.hasPrefix("success") { return BenchFormat.percent(clause.observed) }
        if clause.clause.hasPrefix("rate") { return BenchFormat.rate(clause.observed) }
        return BenchFormat.duration(microseconds: clause.observed)
    }
}

/// Number formatting for bench output, independent of locale.
enum BenchFormat {
    /// "843,921".
    static func grouped(_ value: UInt64) -> String {
        let digits = Array(String(value))
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { result.append(",") }
            result.append(digit)
        }
        return result
    }

    /// `value` rounded to `decimals` places: fixed(10, decimals: 2) is "10.00".
    static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return String(value) }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return String(value) }
        let units = UInt64(scaled)
        let whole = units / UInt64(scale)
        let fraction = units % UInt64(scale)
        var text = (value < 0 && units > 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return text
    }

    /// "100.000 %".
    static func percent(_ value: Double) -> String {
        "\(fixed(value, decimals: 3)) %"
    }

    /// "84,392 req/s"; below 100 with up to two decimals: "2.5 req/s".
    static func rate(_ perSecond: Double) -> String {
        guard perSecond.isFinite, perSecond >= 0 else { return "\(perSecond) req/s" }
        if perSecond >= 100 || perSecond == perSecond.rounded() {
            return "\(grouped(UInt64(perSecond.rounded()))) req/s"
        }
        var text = fixed(perSecond, decimals: 2)
        while text.hasSuffix("0") { text.removeLast() }
        // 19.999 rounds to "20.00": no dot left dangling.
        if text.hasSuffix(".") { text.removeLast() }
        return "\(text) req/s"
    }

    /// "1 connection", "32 connections" (grouped).
    static func count(_ value: Int, _ noun: String) -> String {
        let number = value < 0 ? String(value) : grouped(UInt64(value))
        return "\(number) \(noun)\(value == 1 ? "" : "s")"
    }

    /// A duration with 3 significant figures in its natural unit: "312 µs", "1.02 ms", "8.10 ms", "2.50 s".
    static func duration(microseconds: Double) -> String {
        duration(nanoseconds: microseconds * 1000)
    }

    static func duration(nanoseconds: Double) -> String {
        guard nanoseconds.isFinite, nanoseconds > 0 else { return "0 ns" }
        let units: [(name: String, scale: Double)] = [("ns", 1), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)]
        var unit = 0
        while unit < units.count - 1, nanoseconds >= units[unit + 1].scale { unit += 1 }
        while true {
            let value = nanoseconds / units[unit].scale
            var decimals = decimalsForThreeFigures(value)
            var rounded = round(value, decimals: decimals)
            // 9.996 rounds to 10.00: four figures, so round again with one decimal less.
            if decimalsForThreeFigures(rounded) < decimals {
                decimals = decimalsForThreeFigures(rounded)
                rounded = round(value, decimals: decimals)
            }
            if rounded >= 1000, unit < units.count - 1 {
                unit += 1
                continue
            }
            return "\(fixed(rounded, decimals: decimals)) \(units[unit].name)"
        }
    }

    private static func decimalsForThreeFigures(_ value: Double) -> Int {
        value >= 100 ? 0 : value >= 10 ? 1 : 2
    }

    /// `text` followed by spaces up to `width` characters, and by at least one space.
    static func pad(_ text: String, to width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    private static func round(_ value: Double, decimals: Int) -> Double {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        return (value * scale).rounded() / scale
    }
}
