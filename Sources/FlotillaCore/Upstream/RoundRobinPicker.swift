/// Picks upstreams in turn, passing over those the caller says are not eligible now (down, not ready, draining).
///
/// Each pick starts where the previous one left off, so with every upstream eligible each gets exactly one pick in
/// `count`; an ineligible upstream's turn goes to the next eligible one. A pure value: the shell keeps it (one per
/// event loop, or behind a lock) and asks it once per request.
public struct RoundRobinPicker: Sendable, Hashable {
    /// How many upstreams there are (indices `0..<count`).
    public let count: Int
    /// The upstream whose turn is next (picked if eligible).
    public private(set) var next: Int

    /// A picker over `count` upstreams whose first turn is `start` (several pickers over the same upstreams, one per
    /// event loop, can start at different places so that they do not all send their first request to upstream 0).
    public init(count: Int, start: Int = 0) {
        self.count = max(0, count)
        self.next = self.count == 0 ? 0 : ((start % self.count) + self.count) % self.count
    }

    /// The next eligible upstream in turn, or nil when none is eligible. `isEligible` is asked at most once per
    /// upstream.
    public mutating func pick(where isEligible: (Int) -> Bool) -> Int? {
        var candidate = next
        for _ in 0..<count {
            let upstream = candidate
            candidate += 1
            if candidate == count { candidate = 0 }
            if isEligible(upstream) {
                next = candidate
                return upstream
            }
        }
        return nil
    }

    /// The next upstream in turn, every upstream being eligible; nil when there are none.
    public mutating func pick() -> Int? {
        pick { _ in true }
    }
}
