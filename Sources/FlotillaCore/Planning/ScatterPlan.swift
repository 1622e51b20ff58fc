#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The tail-latency arithmetic of scatter/gather: the root answers when its slowest leaf does, so
/// a request is fast only if every one of its N leaves is, with probability p^N.
///
/// The course's table: with p = 0.99, 4.9 % of requests are slow with 5 leaves, 9.56 % with 10,
/// 39.5 % with 50 and 63.4 % with 100.
public struct ScatterPlan: Sendable {
    /// What the plan is computed from.
    public struct Input: Sendable, Hashable, Codable {
        /// Chance that one leaf answers within the deadline, in (0, 1]. No default.
        public var leafProbability: Double
        /// Fan-outs to evaluate, each at least 1. No default.
        public var leafCounts: [Int]
        /// Share of root requests that must be fast, in (0, 1], e.g. 0.99; nil when not asked. Default nil.
        public var rootTarget: Double?

        public init(leafProbability: Double, leafCounts: [Int], rootTarget: Double? = nil) {
            self.leafProbability = leafProbability
            self.leafCounts = leafCounts
            self.rootTarget = rootTarget
        }
    }

    /// An input the plan cannot be computed from.
    public typealias InputError = PlanInputError

    /// One fan-out.
    public struct Row: Sendable, Hashable, Codable {
        /// Leaves the request fans out to.
        public var leaves: Int
        /// Chance every leaf is fast, p^N.
        public var fastProbability: Double
        /// Chance the request is slow, 1 − p^N.
        public var slowProbability: Double
        /// Per-leaf probability that meets the root target, P^(1/N); nil without a target.
        public var requiredLeafProbability: Double?
    }

    /// The plan.
    public struct Result: Sendable, Hashable, Codable {
        public var input: Input
        public var rows: [Row]
        /// Most leaves the given leaf probability allows while meeting the root target; nil
        /// without a target or when leaves are never slow (p = 1).
        public var maxLeavesForTarget: Int?
    }

    public var input: Input

    /// Checks `input`; throws the first problem found.
    public init(_ input: Input) throws(InputError) {
        guard input.leafProbability > 0, input.leafProbability <= 1 else {
            throw InputError(field: "leaf-p", reason: "must be in (0, 1], got \(input.leafProbability)")
        }
        guard !input.leafCounts.isEmpty else {
            throw InputError(field: "leaves", reason: "give at least one leaf count, e.g. 5,10,50,100")
        }
        if let bad = input.leafCounts.first(where: { $0 < 1 || $0 > 1_000_000_000 }) {
            throw InputError(field: "leaves", reason: "each count must be between 1 and 10^9, got \(bad)")
        }
        if let target = input.rootTarget, !(target > 0 && target <= 1) {
            throw InputError(field: "root-target", reason: "must be in (0, 1], got \(target)")
        }
        self.input = input
    }

    /// Computes the plan.
    public func compute() -> Result {
        let logP = log(input.leafProbability)
        let rows = input.leafCounts.map { leaves in
            let exponent = Double(leaves) * logP
            // −expm1 keeps small slow probabilities exact where 1 − p^N would cancel.
            return Row(
                leaves: leaves,
                fastProbability: exp(exponent),
                slowProbability: -expm1(exponent),
                requiredLeafProbability: input.rootTarget.map {
                    Self.requiredLeafProbability(rootTarget: $0, leaves: leaves)
                }
            )
        }
        var maxLeaves: Int?
        if let target = input.rootTarget, logP < 0 {
            // p^N ≥ P ⇔ N ≤ ln P / ln p; the nudge absorbs rounding when the ratio is whole.
            let bound = (log(target) / logP * (1 + 1e-12)).rounded(.down)
            maxLeaves = bound < 1e18 ? Int(bound) : Int.max
        }
        return Result(input: input, rows: rows, maxLeavesForTarget: maxLeaves)
    }

    /// The per-leaf probability p with p^leaves = rootTarget.
    public static func requiredLeafProbability(rootTarget: Double, leaves: Int) -> Double {
        exp(log(rootTarget) / Double(leaves))
    }
}
