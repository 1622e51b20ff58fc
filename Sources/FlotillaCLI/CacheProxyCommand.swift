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
            are kept as hints and replayed when it answers again.

            Example:
              flotilla cache-proxy --listen 127.0.0.1:22122 \\
                --shards 127.0.0.1:11211,127.0.0.1:11212,127.0.0.1:11213 --replicas 2
            """,
        subcommands: [CacheProxyVerifyCommand.self]
    )

    @OptionGroup var listener: ListenOption
    @OptionGroup var common: CommonOptions

    @Option(help: "The shards, HOST:PORT[:WEIGHT],… (flotilla cache or memcached servers).")
    var shards: String

    @Option(help: "Copies of each key, on distinct shards (default: 2).")
    var replicas = 2

    @Option(help: "Acknowledgements a write waits for: all, quorum (N/2+1) or one (default: quorum).")
    var consistency: ProxyConfiguration.Consistency = .quorum

    @Option(help: "Key placement: ring (consistent hashing, virtual nodes) or ketama (as twemproxy, fnv1a_64).")
    var distribution: DistributionOption = .ring

    @Flag(help: "Write a value found on a fallback replica back to the replicas that missed it.")
    var readRepair = false

    @Option(help: "Deadline of one request to a shard (default: 500ms).", transform: parseDuration)
    var shardTimeout: Duration = .milliseconds(500)

    @Option(help: "Consecutive shard failures that mark it down (default: 3).")
    var failureLimit = 3

    @Option(help: "Most client connections open at once.")
    var maxConnections = 1024

    enum DistributionOption: String, ExpressibleByArgument, CaseIterable {
        case ring, ketama
    }

    func validate() throws {
        _ = try makeConfiguration()
    }

    func makeConfiguration() throws -> ProxyConfiguration {
        let specs: [ShardSpec]
        do {
            specs = try ShardSpec.parseList(shards)
        } catch {
            throw ValidationError("--shards: \(error)")
        }
        var configuration = ProxyConfiguration(shards: specs)
        guard (1...min(specs.count, 8)).contains(replicas) else {
            throw ValidationError(
                "--replicas must be from 1 to the number of shards (\(specs.count), at most 8), got \(replicas)"
            )
        }
        guard (1...100).contains(failureLimit) else {
            throw ValidationError("--failure-limit must be from 1 to 100, got \(failureLimit)")
        }
        guard shardTimeout > .zero, shardTimeout <= .seconds(60) else {
            throw ValidationError("--shard-timeout must be more than 0 and at most 60s")
        }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        configuration.listen = listener.listen ?? HostPort(host: "127.0.0.1", port: 22122)
        configuration.replicas = replicas
        configuration.consistency = consistency
        configuration.distribution = distribution == .ring ? .ring : .ketama(hash: .fnv1a64)
        configuration.readRepair = readRepair
        configuration.shardTimeout = shardTimeout
        configuration.failureLimit = failureLimit
        configuration.maxConnections = maxConnections
        configuration.drainTimeout = common.drainTimeout
        do {
            _ = try ShardRouter(shards: specs, distribution: configuration.distribution, replicas: replicas)
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }

    func run() async throws {
        let configuration = try makeConfiguration()
        let environment = RoleRunner.makeEnvironment(common, operations: ProxyServer.operations)
        let proxy = try ProxyServer(
            configuration: configuration,
            group: environment.group,
            readiness: environment.readiness,
            recorder: environment.recorder,
            version: "1.6.18-flotilla-proxy-\(FlotillaVersion.current)",
            logger: environment.logger
        )
        let info = RoleInfo(
            role: "cache-proxy",
            version: FlotillaVersion.current,
            settings: [
                "listen": configuration.listen.description,
                "admin": common.admin.description,
                "threads": "\(common.threadCount)",
                "shards": configuration.shards.map(\.description).joined(separator: ","),
                "replicas": "\(replicas)",
                "consistency": consistency.rawValue,
                "distribution": distribution.rawValue,
                "read-repair": "\(readRepair)",
                "shard-timeout": DurationText.format(shardTimeout),
                "failure-limit": "\(failureLimit)",
                "slo": common.slo?.description ?? "",
            ]
        )
        try await RoleRunner.run(
            role: proxy,
            info: info,
            options: common,
            environment: environment,
            shards: proxy,
            refreshMetrics: {}
        )
    }
}

extension ProxyConfiguration.Consistency: ExpressibleByArgument {}
