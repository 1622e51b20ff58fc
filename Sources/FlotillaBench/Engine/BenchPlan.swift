import FlotillaCore

/// Everything one run of `flotilla bench` does, validated: the engine takes it as given.
public struct BenchPlan: Sendable {
    /// One extra request header (`--header 'Name: value'`).
    public struct HeaderField: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var target: BenchTarget
    /// Connections kept open to the target.
    public var connections: Int = 32
    /// Event-loop threads driving them.
    public var threads: Int = 1
    /// Requests in flight per connection.
    public var pipeline: Int = 1
    /// Open loop at this many requests per second in total; nil for a closed loop.
    public var rate: Double?
    public var duration: Duration = .seconds(10)
    public var warmup: Duration = .seconds(1)
    /// A request older than this fails as "timeout" and its connection is replaced.
    public var timeout: Duration = .seconds(5)
    public var keys: Int = 100_000
    public var distribution: KeyDistribution = .uniform
    public var seed: UInt64 = 1
    /// Pin event-loop thread i to CPU i (modulo the CPU count), as memcaslap pins its threads.
    public var pinThreads = false

    // memcache
    public var getRatio: Double = 0.9
    public var valueSize: Int = 100
    public var keySize: Int = 32
    public var multiget: Int = 1
    public var prefill = true

    // HTTP
    public var method: String = "GET"
    public var headers: [HeaderField] = []
    public var body: [UInt8] = []
    public var sessions: Int?
    public var sessionCookie: String = "flotilla_session"

    /// Every key starts with this, then the key index, zero-padded to `keySize` characters.
    public static let keyPrefix = "bench:"

    public init(target: BenchTarget) {
        self.target = target
    }

    /// Threads actually used: never more than connections, nor (with sessions) than users, so that
    /// every thread has at least one connection and one user of its own.
    public var effectiveThreads: Int {
        max(1, min(threads, connections, sessions ?? Int.max))
    }

    /// The shortest `--key-size` that holds every key index.
    public static func minimumKeySize(keys: Int) -> Int {
        keyPrefix.utf8.count + String(max(keys - 1, 0)).utf8.count
    }

    /// The key with index `index`, as text.
    public func key(_ index: Int) -> String {
        let digits = String(index)
        let width = keySize - Self.keyPrefix.utf8.count
        return Self.keyPrefix + String(repeating: "0", count: max(width - digits.utf8.count, 0)) + digits
    }
}

extension BenchReport.Settings {
    /// The settings a report states, from the plan that ran.
    public init(plan: BenchPlan) {
        let memcache = plan.target.kind == .memcache
        self.init(
            target: plan.target.description,
            protocol: plan.target.kind.rawValue,
            mode: plan.rate == nil ? "closed" : "open",
            rate: plan.rate,
            connections: plan.connections,
            pipeline: plan.pipeline,
            threads: plan.effectiveThreads,
            durationSeconds: Double(plan.duration.nanoseconds) / 1e9,
            warmupSeconds: Double(plan.warmup.nanoseconds) / 1e9,
            keys: plan.keys,
            distribution: plan.distribution.description,
            valueSize: memcache ? plan.valueSize : nil,
            getRatio: memcache ? plan.getRatio : nil,
            multiget: memcache ? plan.multiget : nil,
            sessions: memcache ? nil : plan.sessions
        )
    }
}
