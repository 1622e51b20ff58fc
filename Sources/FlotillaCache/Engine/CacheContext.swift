import FlotillaServer

/// What every connection's engine shares besides the store: settings and process counters.
final class CacheContext: Sendable {
    /// The version clients see: memcached's protocol level first, so that clients which parse
    /// it find 1.6, then Flotilla's own.
    static let protocolVersion = "1.6.18-flotilla-\(FlotillaVersion.current)"

    let configuration: CacheServer.Configuration
    let totals = CacheCounterTotals()
    /// `stats detail`: per-prefix counts, off until a client turns them on.
    let prefixes = PrefixStats()
    /// The open connections, for `stats conns`.
    let registry = ConnectionRegistry()
    let connections: ConnectionCounters
    let threads: Int
    let started = ContinuousClock.now

    init(configuration: CacheServer.Configuration, connections: ConnectionCounters, threads: Int) {
        self.configuration = configuration
        self.connections = connections
        self.threads = threads
    }
}
