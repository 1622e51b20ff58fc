/// Exponential backoff with jitter, for retrying something that does not answer: a coordinator,
/// a down upstream's health probe.
///
/// Each failure doubles the delay from `initial` up to `maximum`; the delay returned adds a
/// random jitter of up to a quarter of it, so that callers that failed together do not retry
/// together. A success resets it. The randomness is passed in (a value in 0..<1).
public struct RetryBackoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public private(set) var current: Duration
    public private(set) var failures = 0

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        self.initial = initial
        self.maximum = maximum
        self.current = initial
    }

    /// A failure: the delay before the next attempt.
    public mutating func next(random: Double) -> Duration {
        let delay = current
        failures += 1
        current = min(current * 2, maximum)
        return delay + delay * (max(0, min(random, 1)) / 4)
    }

    /// A success.
    public mutating func reset() {
        current = initial
        failures = 0
    }
}
