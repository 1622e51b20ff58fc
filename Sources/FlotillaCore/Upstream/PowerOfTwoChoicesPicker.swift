/// Picks the less loaded of two upstreams drawn at random among the eligible ones ("the power of two choices",
/// Mitzenmacher 2001; Envoy's and Finagle's least-request balancer).
///
/// Two choices keep the most loaded upstream within O(log log n) of the mean, where one random choice leaves it at
/// O(log n / log log n), and, unlike always taking the least loaded, do not herd every balancer onto the same
/// upstream when their load figures are stale. Load is whatever the caller counts: requests in flight, open
/// sessions, queued bytes.
///
/// Stateless: the randomness is a generator passed in (a `SplitMix64` per event loop), the load and the eligibility
/// are asked of the caller at each pick.
public struct PowerOfTwoChoicesPicker: Sendable, Hashable {
    /// How many upstreams there are (indices `0..<count`).
    public let count: Int

    public init(count: Int) {
        self.count = max(0, count)
    }

    /// Two distinct eligible upstreams at random, the one with the lower `load` (the first drawn on a tie); the only
    /// eligible one when there is one; nil when there is none.
    ///
    /// `isEligible` is asked of every upstream once or twice, so that nothing is allocated; `load` of the two
    /// candidates only.
    public func pick(
        where isEligible: (Int) -> Bool,
        load: (Int) -> Int,
        using generator: inout some RandomNumberGenerator
    ) -> Int? {
        var eligibleCount = 0
        for upstream in 0..<count where isEligible(upstream) { eligibleCount += 1 }
        guard eligibleCount > 1 else {
            guard eligibleCount == 1 else { return nil }
            return (0..<count).first(where: isEligible)
        }
        let (firstRank, secondRank) = Self.twoDistinctRanks(below: eligibleCount, using: &generator)
        var first = -1
        var second = -1
        var rank = 0
        for upstream in 0..<count where isEligible(upstream) {
            if rank == firstRank { first = upstream }
            if rank == secondRank { second = upstream }
            if first >= 0, second >= 0 { break }
            rank += 1
        }
        return load(second) < load(first) ? second : first
    }

    /// Like `pick(where:load:using:)`, over an explicit list of eligible upstreams (for example the ready ones);
    /// duplicates in the list weigh an upstream more. Inlinable: on a proxy's every read, it must run specialized.
    @inlinable
    public func pick(
        from eligible: some RandomAccessCollection<Int>,
        load: (Int) -> Int,
        using generator: inout some RandomNumberGenerator
    ) -> Int? {
        guard eligible.count > 1 else { return eligible.first }
        let (firstRank, secondRank) = Self.twoDistinctRanks(below: eligible.count, using: &generator)
        let first = eligible[eligible.index(eligible.startIndex, offsetBy: firstRank)]
        let second = eligible[eligible.index(eligible.startIndex, offsetBy: secondRank)]
        return load(second) < load(first) ? second : first
    }

    /// Two different values in `0..<bound` (bound ≥ 2), uniformly among ordered pairs.
    @inlinable
    static func twoDistinctRanks(
        below bound: Int,
        using generator: inout some RandomNumberGenerator
    ) -> (Int, Int) {
        let first = Int.random(in: 0..<bound, using: &generator)
        var second = Int.random(in: 0..<(bound - 1), using: &generator)
        if second >= first { second += 1 }
        return (first, second)
    }
}
