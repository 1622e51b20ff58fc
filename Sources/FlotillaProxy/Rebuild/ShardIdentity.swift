import FlotillaMemcache

/// Which process a shard is, from its `stats`: a new process is a shard that restarted, and a
/// memcached-protocol server keeps nothing across a restart.
struct ShardIdentity: Sendable, Equatable {
    /// `STAT pid`; nil when the server does not report it.
    var pid: Int?
    /// `STAT uptime`, in seconds.
    var uptime: Int64
    /// When the proxy read it.
    var observedAt: ContinuousClock.Instant

    /// Reads `pid` and `uptime` from a `stats` reply; nil when it holds no uptime.
    init?(_ reply: ShardReply, observedAt: ContinuousClock.Instant) {
        guard case .stats(let lines) = reply else { return nil }
        var pid: Int?
        var uptime: Int64?
        for (name, value) in lines {
            if name == "pid" { pid = Int(value) }
            if name == "uptime" { uptime = Int64(value) }
        }
        guard let uptime else { return nil }
        self.init(pid: pid, uptime: uptime, observedAt: observedAt)
    }

    init(pid: Int?, uptime: Int64, observedAt: ContinuousClock.Instant) {
        self.pid = pid
        self.uptime = uptime
        self.observedAt = observedAt
    }

    /// Seconds of slack for uptime's one-second resolution on both readings.
    static let uptimeSlack: Int64 = 2

    /// Whether this reading is of another process than `earlier`: its pid changed, or its
    /// uptime is shorter than `earlier`'s plus the time between the readings (the pid alone does
    /// not tell: in a container, memcached is pid 1 every time).
    func isRestart(since earlier: ShardIdentity) -> Bool {
        if let pid, let before = earlier.pid, pid != before { return true }
        let elapsed = (observedAt - earlier.observedAt).components.seconds
        return uptime + Self.uptimeSlack < earlier.uptime + elapsed
    }
}
