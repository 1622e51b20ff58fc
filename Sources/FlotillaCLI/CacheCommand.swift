import ArgumentParser
import FlotillaCache
import FlotillaCore
import FlotillaServer

/// `flotilla cache`: a memcached-compatible cache server.
struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "A memcached-compatible cache server (text and meta protocols, LRU, TTL, CAS).",
        discussion: """
            Speaks memcached 1.6's text and meta protocols, so memcached clients use it \
            unchanged. Memory is bounded by --memory (keys, values and per-item overhead); the \
            least recently used items are evicted first.

            Example:
              flotilla cache --listen 127.0.0.1:11211 --admin 127.0.0.1:9100 --memory 256MiB
            """
    )

    @OptionGroup var listener: ListenOption
    @OptionGroup var common: CommonOptions

    @Option(help: "Memory for items: keys, values and per-item overhead (default: 64MiB).", transform: parseByteSize)
    var memory = ByteSize(bytes: 64 << 20)

    @Option(help: "Largest item (default: 1MiB).", transform: parseByteSize)
    var maxItemSize = ByteSize(bytes: 1 << 20)

    @Option(help: "Most client connections open at once.")
    var maxConnections = 1024

    func validate() throws {
        guard memory.bytes >= 1 << 20 else {
            throw ValidationError("--memory must be at least 1MiB, got \(memory)")
        }
        guard maxItemSize.bytes >= 1024, maxItemSize.bytes <= memory.bytes else {
            throw ValidationError("--max-item-size must be between 1KiB and --memory (\(memory)), got \(maxItemSize)")
        }
        guard maxConnections >= 1 else {
            throw ValidationError("--max-connections must be at least 1")
        }
    }

    func run() async throws {
        var configuration = CacheServer.Configuration()
        configuration.listen = listener.listen ?? HostPort(host: "127.0.0.1", port: 11211)
        configuration.memoryLimit = memory.bytes
        configuration.maxItemSize = maxItemSize.bytes
        configuration.maxConnections = maxConnections
        configuration.drainTimeout = common.drainTimeout

        let environment = RoleRunner.makeEnvironment(common, operations: CacheServer.operations)
        let cache = CacheServer(
            configuration: configuration,
            group: environment.group,
            threads: common.threadCount,
            readiness: environment.readiness,
            recorder: environment.recorder,
            metricsFactory: environment.metricsFactory,
            logger: environment.logger
        )
        let info = RoleInfo(
            role: "cache",
            version: FlotillaVersion.current,
            settings: [
                "listen": configuration.listen.description,
                "admin": common.admin.description,
                "threads": "\(common.threadCount)",
                "memory": memory.description,
                "max-item-size": maxItemSize.description,
                "max-connections": "\(maxConnections)",
                "drain-timeout": DurationText.format(common.drainTimeout),
                "slo": common.slo?.description ?? "",
            ]
        )
        try await RoleRunner.run(
            role: cache,
            info: info,
            options: common,
            environment: environment,
            refreshMetrics: { cache.refreshMetrics() }
        )
    }
}
