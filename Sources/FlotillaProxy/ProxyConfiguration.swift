import FlotillaCore
import FlotillaServer

/// Settings of `flotilla cache-proxy`: the same type for its flags, a topology file and
/// `/v1/status`, with the flags' names as keys.
public struct ProxyConfiguration: RoleConfiguration {
    /// How many replicas must acknowledge a write before the client hears it.
    public enum Consistency: String, Sendable, CaseIterable {
        /// Every live replica.
        case all
        /// A majority of the replica set (N/2 + 1).
        case quorum
        /// The first replica; the others finish in the background (eventual consistency).
        case one

        /// Acknowledgements needed out of `replicas`.
        public func required(of replicas: Int) -> Int {
            switch self {
            case .all: replicas
            case .quorum: replicas / 2 + 1
            case .one: min(1, replicas)
            }
        }
    }

    /// Key placement, as `--distribution` names it.
    public enum Placement: String, Sendable, CaseIterable {
        /// Consistent hashing with virtual nodes.
        case ring
        /// twemproxy's ketama continuum with fnv1a_64, key for key.
        case ketama

        var distribution: ShardRouter.Distribution {
            switch self {
            case .ring: .ring
            case .ketama: .ketama(hash: .fnv1a64)
            }
        }
    }

    /// Data listener (default 127.0.0.1:22122).
    public var listen = HostPort(host: "127.0.0.1", port: 22122)
    /// The shards, in order (required).
    public var shards: [ShardSpec]
    /// Copies of each key on distinct shards (default 2, or 1 with a single shard).
    public var replicas: Int
    /// Acknowledgements a write waits for (default quorum).
    public var consistency = Consistency.quorum
    /// Key placement (default ring).
    public var placement = Placement.ring
    /// Write a value found on a fallback replica back to the replicas that missed it (default off).
    public var readRepair = false
    /// Deadline of one request to a shard (default 500 ms).
    public var shardTimeout: Duration = .milliseconds(500)
    /// Consecutive failures (timeouts, refused connects) that mark a shard down (default 3).
    public var failureLimit = 3
    /// Most open client connections (default 1024).
    public var maxConnections = 1024
    /// Bytes held for client requests not yet fully received, across all connections (default 64 MiB).
    public var requestMemory = 64 << 20
    /// Keys per second copied to a shard that restarted, from its peers (default 20,000; 0: no
    /// rebuild, a restarted shard gets back only the writes it missed while down).
    public var rebuildRate = 20_000
    /// Requests queued or in flight to one shard from one event loop; beyond it, `SERVER_ERROR`
    /// (default 4096; not a flag).
    public var maxOutstandingPerShard = 4_096
    /// Keys a down shard missed, kept to repair it when it returns (default 100,000; not a flag).
    public var maxHintsPerShard = 100_000
    /// Largest item a client may store (default 1 MiB; not a flag).
    public var maxItemSize = 1 << 20

    public init(shards: [ShardSpec]) {
        self.shards = shards
        self.replicas = min(2, max(shards.count, 1))
    }

    /// The ring or continuum that `placement` selects.
    public var distribution: ShardRouter.Distribution { placement.distribution }

    public func validate() throws(SettingsError) {
        guard !shards.isEmpty else { throw SettingsError(field: "shards", "no shards; write HOST:PORT[:WEIGHT],…") }
        guard (1...min(shards.count, 8)).contains(replicas) else {
            throw SettingsError(
                field: "replicas",
                "must be from 1 to the number of shards (\(shards.count), at most 8), got \(replicas)"
            )
        }
        guard (1...100).contains(failureLimit) else {
            throw SettingsError(field: "failure-limit", "must be from 1 to 100, got \(failureLimit)")
        }
        guard shardTimeout > .zero, shardTimeout <= .seconds(60) else {
            throw SettingsError(field: "shard-timeout", "must be more than 0 and at most 60s")
        }
        guard maxConnections >= 1 else { throw SettingsError(field: "max-connections", "must be at least 1") }
        guard requestMemory >= maxItemSize + 4096 else {
            throw SettingsError(
                field: "request-memory",
                "must hold one largest item and its line (1MiB + 4KiB), got \(ByteSize(bytes: requestMemory))"
            )
        }
        guard (0...10_000_000).contains(rebuildRate) else {
            throw SettingsError(
                field: "rebuild-rate",
                "must be from 0 (off) to 10000000 keys per second, got \(rebuildRate)"
            )
        }
        do {
            _ = try ShardRouter(shards: shards, distribution: distribution, replicas: replicas)
        } catch {
            throw SettingsError(field: "shards", "\(error)")
        }
    }
}

extension ProxyConfiguration: Codable {
    enum CodingKeys: String, CodingKey {
        case listen, shards, replicas, consistency, distribution
        case readRepair = "read-repair"
        case shardTimeout = "shard-timeout"
        case failureLimit = "failure-limit"
        case maxConnections = "max-connections"
        case requestMemory = "request-memory"
        case rebuildRate = "rebuild-rate"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // `shards` is a list of HOST:PORT[:WEIGHT], or one comma-separated string as the flag takes.
        let text: String
        if let list = try? container.decode([String].self, forKey: .shards) {
            text = list.joined(separator: ",")
        } else {
            text = try container.decodeValue(String.self, forKey: .shards) ?? ""
        }
        do {
            self.init(shards: try ShardSpec.parseList(text))
        } catch {
            throw SettingsError(field: CodingKeys.shards.stringValue, "\(error)")
        }
        listen = try container.decodeSetting(HostPort.self, forKey: .listen) ?? listen
        replicas = try container.decodeValue(Int.self, forKey: .replicas) ?? replicas
        if let text = try container.decodeValue(String.self, forKey: .consistency) {
            consistency = try Consistency.setting(text, field: CodingKeys.consistency.stringValue)
        }
        if let text = try container.decodeValue(String.self, forKey: .distribution) {
            placement = try Placement.setting(text, field: CodingKeys.distribution.stringValue)
        }
        readRepair = try container.decodeValue(Bool.self, forKey: .readRepair) ?? readRepair
        shardTimeout = try container.decodeSetting(Duration.self, forKey: .shardTimeout) ?? shardTimeout
        failureLimit = try container.decodeValue(Int.self, forKey: .failureLimit) ?? failureLimit
        maxConnections = try container.decodeValue(Int.self, forKey: .maxConnections) ?? maxConnections
        requestMemory = try container.decodeSetting(ByteSize.self, forKey: .requestMemory)?.bytes ?? requestMemory
        rebuildRate = try container.decodeValue(Int.self, forKey: .rebuildRate) ?? rebuildRate
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeSetting(listen, forKey: .listen)
        try container.encode(shards.map(\.description), forKey: .shards)
        try container.encode(replicas, forKey: .replicas)
        try container.encode(consistency.rawValue, forKey: .consistency)
        try container.encode(placement.rawValue, forKey: .distribution)
        try container.encode(readRepair, forKey: .readRepair)
        try container.encodeSetting(shardTimeout, forKey: .shardTimeout)
        try container.encode(failureLimit, forKey: .failureLimit)
        try container.encode(maxConnections, forKey: .maxConnections)
        try container.encodeSetting(ByteSize(bytes: requestMemory), forKey: .requestMemory)
        try container.encode(rebuildRate, forKey: .rebuildRate)
    }
}
