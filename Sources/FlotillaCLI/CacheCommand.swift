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
              flotilla cache --listen 127.0.0.1:11211 --admin 127.0.0.1:11311 --memory 256MiB
            """
    )

    @OptionGroup var listener: ListenOption
    @OptionGroup var common: CommonOptions

    @Option(help: "Memory for items: keys, values and per-item overhead (default: 64MiB).", transform: parseByteSize)
    var memory = ByteSize(bytes: 64 << 20)

    @Option(help: "Largest item (default: 1MiB).", transform: parseByteSize)
    var maxItemSize = ByteSize(bytes: 1 << 20)

    @OptionGroup var limits: ClientLimitOptions

    func validate() throws {
        _ = try RoleLauncher.usable(roleConfiguration)
    }

    /// The flags as the cache's settings.
    var roleConfiguration: CacheServer.Configuration {
        var configuration = CacheServer.Configuration()
        configuration.listen = listener.listen ?? configuration.listen
        configuration.memoryLimit = memory.bytes
        configuration.maxItemSize = maxItemSize.bytes
        configuration.maxConnections = limits.maxConnections
        configuration.requestMemory = limits.requestMemory.bytes
        return configuration
    }

    func run() async throws {
        try await RoleLauncher.run(CacheServer.self, configuration: roleConfiguration, common: common)
    }
}
