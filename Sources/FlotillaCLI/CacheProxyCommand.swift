import ArgumentParser
import FlotillaCore
import FlotillaProxy
import FlotillaServer

/// `flotilla cache-proxy`: shards and replicates a memcached-protocol cache.
struct CacheProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-proxy",
        abstract: "A memcached-protocol proxy that shards keys over cache servers and replicates each on N of them.",
        discussion: """
            Clients speak the memcached text and meta protocols to the proxy as to one server. Each \
            key lives on --replicas distinct shards (consistent hashing); writes go to all of them \
            and are acknowledged per --consistency, reads go to the less busy of two replicas and \
            fall back to another on a miss or a failure. A shard that fails --failure-limit times \
            in a row is marked down: its keys move to the next live shards, the writes it misses \
            are kept as hints and replayed when it answers again. A shard that restarted (empty) \
            is rebuilt from its peers at --rebuild-rate before it serves reads again.

            Example:
              flotilla cache-proxy --listen 127.0.0.1:22122 \\
                --shards 127.0.0.1:11211,127.0.0.1:11212,127.0.0.1:11213 --replicas 2
            """,
        subcommands: [CacheProxyVerifyCommand.self]
    )

    @OptionGroup var listener: ListenOption
    @OptionGroup var common: CommonOptions

    // Optional to the parser, so that `cache-proxy verify --help` is the subcommand's help; a
    // missing --shards is a usage error in `roleConfiguration()`.
    @Option(help: "The shards, HOST:PORT[:WEIGHT],… (flotilla cache or memcached servers; required).")
    var shards: String?

    @Option(help: "Copies of each key, on distinct shards (default: 2, or 1 with a single shard).")
    var replicas: Int?

    @Option(
        help: """
            Acknowledgements a write waits for: all, quorum (N/2+1) or one (default: quorum). \
            With --replicas 2, quorum is both: a replica that is slow or gone fails writes until it is marked down.
            """
    )
    var consistency: ProxyConfiguration.Consistency = .quorum

    @Option(help: "Key placement: ring (consistent hashing, virtual nodes) or ketama (as twemproxy, fnv1a_64).")
    var distribution: ProxyConfiguration.Placement = .ring

    @Flag(help: "Write a value found on a fallback replica back to the replicas that missed it.")
    var readRepair = false

    @Option(help: "Deadline of one request to a shard (default: 500ms).", transform: parseDuration)
    var shardTimeout: Duration = .milliseconds(500)

    @Option(help: "Consecutive shard failures that mark it down.")
    var failureLimit = 3

    @OptionGroup var limits: ClientLimitOptions

    @Option(
        help: """
            Keys per second copied to a shard that restarted (a new pid, or a shorter uptime, on the \
            proxy's probes) from its peers' lru_crawler metadump; it serves no reads until done. \
            0 turns rebuilds off.
            """
    )
    var rebuildRate = 20_000

    func validate() throws {
        _ = try roleConfiguration()
    }

    /// The flags as the proxy's settings.
    func roleConfiguration() throws -> ProxyConfiguration {
        guard let shards else { throw ValidationError("--shards: missing; write HOST:PORT[:WEIGHT],…") }
        let specs: [ShardSpec]
        do {
            specs = try ShardSpec.parseList(shards)
        } catch {
            throw ValidationError("--shards: \(error)")
        }
        var configuration = ProxyConfiguration(shards: specs)
        configuration.listen = listener.listen ?? configuration.listen
        configuration.replicas = replicas ?? min(2, specs.count)
        configuration.consistency = consistency
        configuration.placement = distribution
        configuration.readRepair = readRepair
        configuration.shardTimeout = shardTimeout
        configuration.failureLimit = failureLimit
        configuration.maxConnections = limits.maxConnections
        configuration.requestMemory = limits.requestMemory.bytes
        configuration.rebuildRate = rebuildRate
        return try RoleLauncher.usable(configuration)
    }

    func run() async throws {
        try await RoleLauncher.run(ProxyServer.self, configuration: try roleConfiguration(), common: common)
    }
}

extension ProxyConfiguration.Consistency: ExpressibleByArgument {}
extension ProxyConfiguration.Placement: ExpressibleByArgument {}
