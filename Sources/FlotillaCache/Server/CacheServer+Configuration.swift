import FlotillaCore
import FlotillaServer

extension CacheServer {
    /// Settings of the cache role: the same type for its flags, a topology file and `/v1/status`,
    /// with the flags' names as keys. Defaults are memcached's.
    public struct Configuration: RoleConfiguration {
        /// Data listener (default 127.0.0.1:11211).
        public var listen = HostPort(host: "127.0.0.1", port: 11211)
        /// Memory for items, keys and per-item overhead (default 64 MiB).
        public var memoryLimit = 64 << 20
        /// Largest item (default 1 MiB).
        public var maxItemSize = 1 << 20
        /// Most open connections (default 1024).
        public var maxConnections = 1024
        /// Bytes held for requests not yet fully received, across all connections (default 64 MiB).
        public var requestMemory = 64 << 20

        public init() {}

        public func validate() throws(SettingsError) {
            guard memoryLimit >= 1 << 20 else {
                throw SettingsError(field: "memory", "must be at least 1MiB, got \(ByteSize(bytes: memoryLimit))")
            }
            guard maxItemSize >= 1024, maxItemSize <= memoryLimit else {
                throw SettingsError(
                    field: "max-item-size",
                    "must be between 1KiB and --memory (\(ByteSize(bytes: memoryLimit))), got \(ByteSize(bytes: maxItemSize))"
                )
            }
            guard maxConnections >= 1 else { throw SettingsError(field: "max-connections", "must be at least 1") }
            guard requestMemory >= maxItemSize + 4096 else {
                throw SettingsError(
                    field: "request-memory",
                    "must hold one largest item and its line (--max-item-size + 4KiB), got \(ByteSize(bytes: requestMemory))"
                )
            }
        }
    }
}

extension CacheServer.Configuration: Codable {
    enum CodingKeys: String, CodingKey {
        case listen
        case memoryLimit = "memory"
        case maxItemSize = "max-item-size"
        case maxConnections = "max-connections"
        case requestMemory = "request-memory"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        listen = try container.decodeSetting(HostPort.self, forKey: .listen) ?? listen
        memoryLimit = try container.decodeSetting(ByteSize.self, forKey: .memoryLimit)?.bytes ?? memoryLimit
        maxItemSize = try container.decodeSetting(ByteSize.self, forKey: .maxItemSize)?.bytes ?? maxItemSize
        maxConnections = try container.decodeValue(Int.self, forKey: .maxConnections) ?? maxConnections
        requestMemory = try container.decodeSetting(ByteSize.self, forKey: .requestMemory)?.bytes ?? requestMemory
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeSetting(listen, forKey: .listen)
        try container.encodeSetting(ByteSize(bytes: memoryLimit), forKey: .memoryLimit)
        try container.encodeSetting(ByteSize(bytes: maxItemSize), forKey: .maxItemSize)
        try container.encode(maxConnections, forKey: .maxConnections)
        try container.encodeSetting(ByteSize(bytes: requestMemory), forKey: .requestMemory)
    }
}
