import Foundation

extension PeerProcess {
    /// Runs `body` with the listeners of a fresh `flotilla cache-proxy` over the given loopback shards, stopping it
    /// afterwards.
    ///
    /// Like `withFlotilla`, the proxy binds port 0 itself and reports the chosen addresses as JSON "listening" log
    /// lines on stderr. `extraArguments` go after `--shards`, e.g. `["--replicas", "2", "--consistency", "all"]`.
    static func withCacheProxy<Result>(
        shardPorts: [UInt16],
        extraArguments: [String] = [],
        _ body: (FlotillaAddresses) throws -> Result
    ) throws -> Result {
        let path = flotillaPath()
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw PeerError(description: "flotilla binary not found at \(path); run `swift build` or set FLOTILLA_BIN")
        }
        let shards = shardPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let arguments =
            [
                "cache-proxy", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-format", "json",
                "--shards", shards,
            ] + extraArguments
        let peer = try launch(name: "flotilla cache-proxy", path: path, arguments: arguments)
        defer { peer.stop() }
        guard let addresses = peer.stderrLog.waitForListeners(timeout: .seconds(20)) else {
            throw PeerError(
                description: "flotilla cache-proxy did not report both listeners within 20 s; stderr: "
                    + peer.stderrTail()
            )
        }
        return try body(addresses)
    }

    /// A reference memcached, and a cache-proxy (`--replicas 2 --consistency all`) over three more: the
    /// setting of the tests that compare the proxy with one memcached. The long shard timeout keeps a late
    /// shard reply on a loaded machine from turning into a retry or a failover, which reorder writes
    /// (failover has its own tests).
    static func withReferenceAndProxy(
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
