/// Durations as users write them: `250ms`, `5s`, `1m`, `1.5s`, `800us`.
public enum DurationText {
    private static let units: [(suffix: String, seconds: Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
    ]

    /// Parses `text`; nil unless it is a non-negative number followed by a unit.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingSpaces
        for (suffix, seconds) in units where trimmed.hasSuffix(suffix) {
            let number = String(trimmed.dropLast(suffix.count))
            guard let value = Double(number), value >= 0, value.isFinite else { continue }
            let nanoseconds = value * seconds * 1e9
            guard nanoseconds < Double(Int64.max) else { return nil }
            return .nanoseconds(Int64(nanoseconds.rounded()))
        }
        return nil
    }

    /// A short human form: `250ms`, `5s`, `1.5ms`, `800us`.
    public static func format(_ duration: Duration) -> String {
        guard duration != .zero else { return "0s" }
        let nanoseconds = Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
        return formatMicroseconds(nanoseconds / 1_000)
    }

    public static func formatMicroseconds(_ micros: Double) -> String {
        func trim(_ value: Double) -> String {
            let rounded = (value * 1000).rounded() / 1000
            return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
        }
        if micros >= 1_000_000 { return trim(micros / 1_000_000) + "s" }
        if micros >= 1_000 { return trim(micros / 1_000) + "ms" }
        return trim(micros) + "us"
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at `Int64.max`.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product &+ attoseconds / 1_000_000_000
    }

    /// The duration in seconds, as a `Double`.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
