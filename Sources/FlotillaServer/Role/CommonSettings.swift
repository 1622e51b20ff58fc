import FlotillaCore
import Logging
import NIOCore

/// The settings every long-running role takes (DESIGN.md §2), with the flags' names as keys.
public struct CommonSettings: RoleConfiguration {
    public enum LogFormat: String, Codable, Sendable, CaseIterable {
        case text, json
    }

    /// Admin listener (default nil: 127.0.0.1 and the role's own `defaultAdminPort`; port 0 picks a
    /// free port).
    public var admin: HostPort?
    /// Event loops (default: the number of cores).
    public var threads: Int?
    /// swift-log level (default info).
    public var logLevel: Logger.Level = .info
    /// Log lines as text or one JSON object per line (default text).
    public var logFormat = LogFormat.text
    /// The role's objective, judged live on `/v1/status` (default none).
    public var slo: SLOSpec?
    /// On SIGTERM, how long the role keeps serving with `/readyz` at 503 before it stops accepting
    /// connections, so that a load balancer's health check sees it leave (default 0).
    public var drainDelay: Duration = .zero
    /// Longest wait for open requests on shutdown (default 10 s).
    public var drainTimeout: Duration = .seconds(10)
    /// Where to write the bound listeners once they are all bound (default none).
    public var readyFile: String?

    public init() {}

    /// Event loops to run: `threads`, or one per core.
    public var threadCount: Int { threads ?? System.coreCount }

    public func validate() throws(SettingsError) {
        if let threads, !(1...256).contains(threads) {
            throw SettingsError(field: "threads", "must be from 1 to 256, got \(threads)")
        }
        guard drainDelay >= .zero, drainDelay <= .seconds(3600) else {
            throw SettingsError(field: "drain-delay", "must be from 0 to 1h, got \(drainDelay.settingText)")
        }
        guard drainTimeout >= .zero, drainTimeout <= .seconds(3600) else {
            throw SettingsError(field: "drain-timeout", "must be from 0 to 1h, got \(drainTimeout.settingText)")
        }
        if let readyFile, readyFile.isEmpty {
            throw SettingsError(field: "ready-file", "must be a path")
        }
    }

    enum CodingKeys: String, CodingKey {
        case admin, threads, slo
        case logLevel = "log-level"
        case logFormat = "log-format"
        case drainDelay = "drain-delay"
        case drainTimeout = "drain-timeout"
        case readyFile = "ready-file"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        admin = try container.decodeSetting(HostPort.self, forKey: .admin)
        threads = try container.decodeValue(Int.self, forKey: .threads)
        if let level = try container.decodeValue(String.self, forKey: .logLevel) {
            logLevel = try Logger.Level.setting(level.lowercased(), field: CodingKeys.logLevel.stringValue)
        }
        if let format = try container.decodeValue(String.self, forKey: .logFormat) {
            logFormat = try LogFormat.setting(format, field: CodingKeys.logFormat.stringValue)
        }
        slo = try container.decodeSetting(SLOSpec.self, forKey: .slo)
        drainDelay = try container.decodeSetting(Duration.self, forKey: .drainDelay) ?? drainDelay
        drainTimeout = try container.decodeSetting(Duration.self, forKey: .drainTimeout) ?? drainTimeout
        readyFile = try container.decodeValue(String.self, forKey: .readyFile)
    }

    /// Encodes the effective values: `threads` as the count of event loops that run.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(admin.map(\.settingText), forKey: .admin)
        try container.encode(threadCount, forKey: .threads)
        try container.encode(logLevel.rawValue, forKey: .logLevel)
        try container.encode(logFormat.rawValue, forKey: .logFormat)
        try container.encodeSetting(slo, forKey: .slo)
        try container.encodeSetting(drainDelay, forKey: .drainDelay)
        try container.encodeSetting(drainTimeout, forKey: .drainTimeout)
        try container.encodeIfPresent(readyFile, forKey: .readyFile)
    }
}
