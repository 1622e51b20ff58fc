import Foundation

extension PeerProcess {
    /// Runs `body` with the listeners of a fresh `flotilla cache-proxy` over the given loopback shards, stopping it
    /// afterwards.
    ///
    /// Like `withFlotilla`, the proxy binds port 0 itself and writes the chosen ports to its ready file.
    /// `extraArguments` go after `--shards`, e.g. `["--replicas", "2", "--consistency", "all"]`.
    static func withCacheProxy<Result>(
        shardPorts: [UInt16],
        extraArguments: [String] = [],
        _ body: (FlotillaAddresses) throws -> Result
    ) throws -> Result {
        let shards = shardPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let (peer, addresses) = try launchFlotilla(
            name: "flotilla cache-proxy",
            arguments: ["cache-proxy", "--shards", shards] + extraArguments
        )
        defer { peer.stop() }
        return try body(addresses)
    }

    /// A reference memcached, and a cache-proxy (`--replicas 2 --consistency all`) over three more: the
    /// setting of the tests that compare the proxy with one memcached. The long shard timeout keeps a late
    /// shard reply on a loaded machine from turning into a retry or a failover, which reorder writes
    /// (failover has its own tests).
    public static func withReferenceAndProxy(
        _ body: (_ referencePort: UInt16, _ proxy: FlotillaAddresses) throws -> Void
    ) throws {
        try withMemcached { referencePort in
            try withMemcached { shard0 in
                try withMemcached { shard1 in
                    try withMemcached { shard2 in
                        try withCacheProxy(
                            shardPorts: [shard0, shard1, shard2],
                            extraArguments: ["--replicas", "2", "--consistency", "all", "--shard-timeout", "10s"]
                        ) { proxy in
                            try body(referencePort, proxy)
                        }
                    }
                }
            }
        }
    }
}
