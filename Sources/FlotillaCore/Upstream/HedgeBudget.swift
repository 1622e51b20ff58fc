/// A token bucket that keeps hedged requests to a fraction of all requests, so that hedging cannot multiply the
/// load on upstreams that are slow because they are overloaded (Dean and Barroso, "The Tail at Scale", 2013;
/// Finagle's `RetryBudget`, gRPC's retry throttling).
///
/// Each request sent earns `ratio` tokens, each hedge spends one, and the bucket holds at most `capacity`: over
/// any stretch of time, hedges stay under `ratio` × requests + `capacity`. The root keeps one budget across its
/// requests (one per event loop, or behind a lock) and passes it to each `FanOut`. Tokens are counted in
/// thousandths, so that ten requests at a ratio of 0.1 earn exactly one hedge.
public struct HedgeBudget: Sendable, Hashable {
    /// Thousandths of a token per token.
    private static let scale = 1_000

    /// Thousandths of a token earned per request.
    private let earnedPerRequest: Int
    /// The most thousandths of a token the bucket holds.
    private let capacityScaled: Int
    /// Thousandths of a token held now.
    private var held: Int

    /// A budget earning `ratio` tokens per request (default 0.1: hedges under 10 % of requests), holding at most
    /// `capacity` tokens (default 10: a burst of ten hedges). It starts full, so that a root with little traffic can
    /// hedge its first slow requests; negative values count as zero.
    public init(ratio: Double = 0.1, capacity: Double = 10) {
        earnedPerRequest = Self.scaled(ratio)
        capacityScaled = Self.scaled(capacity)
        held = capacityScaled
    }

    /// A budget that never allows a hedge.
    public static var disabled: HedgeBudget { HedgeBudget(ratio: 0, capacity: 0) }

    /// Tokens earned per request.
    public var ratio: Double { Double(earnedPerRequest) / Double(Self.scale) }
    /// The most tokens the bucket holds.
    public var capacity: Double { Double(capacityScaled) / Double(Self.scale) }
    /// Tokens held now.
    public var tokens: Double { Double(held) / Double(Self.scale) }

    /// `requests` requests were sent: earn their tokens, up to the capacity.
    public mutating func earn(requests: Int = 1) {
        guard requests > 0 else { return }
        let (earned, overflow) = earnedPerRequest.multipliedReportingOverflow(by: requests)
        held = overflow ? capacityScaled : min(capacityScaled, held + min(earned, capacityScaled))
    }

    /// Takes one token for a hedge; false (and nothing taken) when less than one is held.
    public mutating func spend() -> Bool {
        guard held >= Self.scale else { return false }
        held -= Self.scale
        return true
    }

    private static func scaled(_ value: Double) -> Int {
        guard value.isFinite, value > 0 else { return 0 }
        return Int(min(value * Double(scale), Double(Int32.max)).rounded())
    }
}
