/// The sizing arithmetic of a work queue seen as an M/M/c system: Poisson arrivals at rate λ,
/// exponential service of mean S, c workers.
///
/// It answers the course's questions: will the queue saturate, how long do jobs wait, how many
/// workers hold a wait target, and, when arrivals outrun the workers, how fast the backlog grows
/// and when it reaches the queue's capacity.
public struct QueuePlan: Sendable {
    /// What the plan is computed from.
    public struct Input: Sendable, Hashable, Codable {
        /// Jobs arriving per second, λ. No default.
        public var arrivalRate: Double
        /// Mean time one worker spends on a job, in seconds, S = 1/μ. No default.
        public var serviceSeconds: Double
        /// Workers, c; nil to size them. Default nil.
        public var workers: Int?
        /// Longest acceptable mean wait in the queue, in seconds; nil for none. Default nil.
        public var waitTargetSeconds: Double?
        /// Jobs the queue can hold; nil when unbounded. Default nil.
        public var capacity: Int?

        public init(
            arrivalRate: Double,
            serviceSeconds: Double,
            workers: Int? = nil,
            waitTargetSeconds: Double? = nil,
            capacity: Int? = nil
        ) {
            self.arrivalRate = arrivalRate
            self.serviceSeconds = serviceSeconds
            self.workers = workers
            self.waitTargetSeconds = waitTargetSeconds
            self.capacity = capacity
        }
    }

    /// An input the plan cannot be computed from.
    public typealias InputError = PlanInputError

    /// The plan. Times are in seconds. Steady-state figures are nil when the queue is unstable,
    /// backlog figures nil when it is stable: never infinity or NaN.
    public struct Result: Sendable, Hashable, Codable {
        public var input: Input
        /// Offered load a = λS: the number of workers kept busy on average.
        public var offeredLoad: Double
        /// Workers evaluated: the given count, or the sized one.
        public var workers: Int
        /// Utilisation ρ = a / c.
        public var utilisation: Double
        /// Whether the queue reaches a steady state (ρ < 1).
        public var stable: Bool
        /// Erlang C: chance an arriving job has to wait.
        public var waitProbability: Double?
        /// Mean wait in the queue, Wq = P_wait / (cμ − λ).
        public var meanWaitSeconds: Double?
        /// Mean time from arrival to completion, Wq + S.
        public var meanResponseSeconds: Double?
        /// Mean jobs waiting, Lq = λ Wq.
        public var meanQueueLength: Double?
        /// Fewest workers that keep ρ < 1 and, with a target, Wq within it; nil if over the search bound.
        public var workersNeeded: Int?
        /// Jobs per second the backlog grows by, λ − cμ, when ρ ≥ 1.
        public var backlogGrowthPerSecond: Double?
        /// Time until the backlog reaches `capacity`, when it grows.
        public var secondsToCapacity: Double?
        /// One sentence on the verdict, for people.
        public var summary: String
    }

    /// Largest worker count the sizing search tries.
    public static let maxWorkers = 100_000

    public var input: Input

    /// Checks `input`; throws the first problem found.
    public init(_ input: Input) throws(InputError) {
        guard input.arrivalRate > 0, input.arrivalRate.isFinite else {
            throw InputError(field: "arrival", reason: "must be above 0 jobs per second")
        }
        guard input.serviceSeconds > 0, input.serviceSeconds.isFinite else {
            throw InputError(field: "service", reason: "must be above 0 seconds")
        }
        if let workers = input.workers, !(1...Self.maxWorkers).contains(workers) {
            throw InputError(field: "workers", reason: "must be between 1 and \(Self.maxWorkers), got \(workers)")
        }
        // Erlang C is never 0, so a zero target would send the search to its bound.
        if let target = input.waitTargetSeconds, !(target > 0 && target.isFinite) {
            throw InputError(field: "wait-target", reason: "must be above 0 seconds")
        }
        if let capacity = input.capacity, capacity < 1 {
            throw InputError(field: "capacity", reason: "must be at least 1 job, got \(capacity)")
        }
        self.input = input
    }

    /// Computes the plan.
    public func compute() -> Result {
        let load = input.arrivalRate * input.serviceSeconds
        let needed = workersNeeded()
        let workers = input.workers ?? needed ?? Self.maxWorkers
        var result = Result(
            input: input,
            offeredLoad: load,
            workers: workers,
            utilisation: load / Double(workers),
            stable: Double(workers) > load,
            workersNeeded: needed,
            summary: ""
        )
        let serviceRate = Double(workers) / input.serviceSeconds
        if result.stable {
            let erlangC = Self.erlangC(workers: workers, load: load)
            let wait = erlangC / (serviceRate - input.arrivalRate)
            result.waitProbability = erlangC
            result.meanWaitSeconds = wait
            result.meanResponseSeconds = wait + input.serviceSeconds
            result.meanQueueLength = input.arrivalRate * wait
            if let target = input.waitTargetSeconds, wait > target {
                result.summary = "Stable, but the mean wait misses the target; see the workers needed."
            } else {
                result.summary = "Stable: the workers keep up and the queue has a steady state."
            }
        } else {
            let growth = max(0, input.arrivalRate - serviceRate)
            result.backlogGrowthPerSecond = growth
            if growth > 0 {
                result.secondsToCapacity = input.capacity.map { Double($0) / growth }
                result.summary = "Unstable: arrivals outrun the workers and the backlog grows without bound."
            } else {
                // At ρ = 1 the mean drift is zero, yet the backlog still wanders off without bound.
                result.summary = "Unstable: at exactly 100 % utilisation the backlog has no steady state."
            }
        }
        if needed == nil {
            let goal = input.waitTargetSeconds == nil ? "keeps up" : "meets the wait target"
            result.summary += " No count up to \(Self.maxWorkers) workers \(goal)."
        }
        return result
    }

    /// The fewest workers with ρ < 1 whose mean wait meets the target, if any; nil past `maxWorkers`.
    public func workersNeeded() -> Int? {
        let load = input.arrivalRate * input.serviceSeconds
        // Erlang B grows with c in one step each, so the search costs one recursion step per count.
        var erlangB = 1.0
        for workers in 1...Self.maxWorkers {
            erlangB = load * erlangB / (Double(workers) + load * erlangB)
            guard Double(workers) > load else { continue }
            guard let target = input.waitTargetSeconds else { return workers }
            let erlangC = Self.erlangC(workers: workers, load: load, erlangB: erlangB)
            let wait = erlangC / (Double(workers) / input.serviceSeconds - input.arrivalRate)
            if wait <= target { return workers }
        }
        return nil
    }

    /// Erlang B, the blocking probability of `workers` servers offered `load` erlangs, by the
    /// recursion B(k) = a·B(k−1) / (k + a·B(k−1)), which never overflows unlike the factorial form.
    public static func erlangB(workers: Int, load: Double) -> Double {
        var erlangB = 1.0
        for k in stride(from: 1, through: workers, by: 1) {
            erlangB = load * erlangB / (Double(k) + load * erlangB)
        }
        return erlangB
    }

    /// Erlang C, the chance an arrival waits, for `workers` > `load`: C = cB / (c − a(1 − B)).
    public static func erlangC(workers: Int, load: Double, erlangB: Double? = nil) -> Double {
        let blocking = erlangB ?? Self.erlangB(workers: workers, load: load)
        let c = Double(workers)
        return c * blocking / (c - load * (1 - blocking))
    }
}
