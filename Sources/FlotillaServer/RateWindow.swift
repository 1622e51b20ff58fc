import FlotillaCore
import Synchronization

/// Request rates over a sliding window, from per-operation totals sampled about once a second.
public final class RateWindow: Sendable {
    private struct Sample {
        var time: ContinuousClock.Instant
        var totals: [UInt64]
    }

    private let samples = Mutex<[Sample]>([])
    private let window: Duration

    public init(window: Duration = .seconds(10)) {
        self.window = window
    }

    public func record(_ totals: [UInt64], at time: ContinuousClock.Instant = .now) {
        samples.withLock { samples in
            samples.append(Sample(time: time, totals: totals))
            while samples.count > 2, let first = samples.first, time - first.time > window {
                samples.removeFirst()
            }
        }
    }

    /// Per-operation rates between the oldest sample in the window and `totals` now.
    public func rates(current totals: [UInt64], at time: ContinuousClock.Instant = .now) -> [Double] {
        samples.withLock { samples in
            guard let oldest = samples.first, oldest.totals.count == totals.count else {
                return Array(repeating: 0, count: totals.count)
            }
            let elapsed = time - oldest.time
            let seconds = elapsed.inSeconds
            guard seconds > 0.2 else { return Array(repeating: 0, count: totals.count) }
            return zip(totals, oldest.totals).map { Double($0 &- $1) / seconds }
        }
    }
}
