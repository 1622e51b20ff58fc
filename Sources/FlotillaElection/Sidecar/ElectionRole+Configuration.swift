import FlotillaCore
import FlotillaServer
import Foundation

extension ElectionRole {
    /// Settings of `flotilla elect`: the same type for its flags, a topology file and
    /// `/v1/status`, with the flags' names as keys.
    public struct Configuration: RoleConfiguration {
        /// The election's name: candidates with the same name compete (required).
        public var name: String
        /// `file:PATH` or `etcd://HOST:PORT[,…]` (required).
        public var coordinator: CoordinatorURL
        /// This candidate's id (default HOSTNAME-PID).
        public var id: String?
        /// Lease time to live (default 5 s).
        public var ttl: Duration = .seconds(5)
        /// Time the command has to exit after SIGTERM (default: the smaller of 1 s and TTL/5).
        public var grace: Duration?
        /// The sidecar's listener (default none).
        public var http: HostPort?
        /// The command to run while leading (default none: sidecar mode).
        public var command: [String] = []

        public init(name: String, coordinator: CoordinatorURL) {
            self.name = name
            self.coordinator = coordinator
        }

        /// The candidate's id as it campaigns.
        public var candidate: String { id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())" }

        /// The command's grace period as it applies.
        public var effectiveGrace: Duration { grace ?? min(.seconds(1), ttl / 5) }

        /// How long before the lease can expire the command is told to stop: its grace, plus a
        /// slack for clock rate differences.
        public var margin: Duration { effectiveGrace + max(ttl / 10, .milliseconds(100)) }

        public func validate() throws(SettingsError) {
            guard !name.isEmpty, name.utf8.count <= 128, !name.contains(where: \.isNewline) else {
                throw SettingsError(field: "name", "must be 1 to 128 bytes on one line, got '\(name)'")
            }
            let candidate = self.candidate
            guard !candidate.isEmpty, candidate.utf8.count <= FileCoordinator.maximumIDLength,
                !candidate.contains(where: \.isNewline)
            else {
                throw SettingsError(field: "id", "must be 1 to \(FileCoordinator.maximumIDLength) bytes on one line")
            }
            guard ttl >= .seconds(1), ttl <= .seconds(3600) else {
                throw SettingsError(field: "ttl", "must be from 1s to 1h, got \(ttl.settingText)")
            }
            guard effectiveGrace >= .zero, margin <= ttl / 2 else {
                let most = ttl / 2 - max(ttl / 10, .milliseconds(100))
                throw SettingsError(
                    field: "grace",
                    "must leave time to renew the lease: at most \(most.settingText) with --ttl \(ttl.settingText)"
                )
            }
            guard !command.isEmpty || http != nil else {
                throw SettingsError(
                    field: "command",
                    "give a command to run while leading (after --), or --http HOST:PORT for sidecar mode"
                )
            }
            if case .file(let path) = coordinator {
                // The lock file may not exist yet; its directory must, or every candidate would
                // retry forever as if the coordinator were down.
                let directory = (path as NSString).deletingLastPathComponent
                var isDirectory: ObjCBool = false
                guard
                    FileManager.default.fileExists(
                        atPath: directory.isEmpty ? "." : directory,
                        isDirectory: &isDirectory
                    ),
                    isDirectory.boolValue
                else {
                    throw SettingsError(
                        field: "coordinator",
                        "file:\(path): no directory \(directory) to hold the lock"
                    )
                }
            }
        }
    }
}

extension ElectionRole.Configuration: Codable {
    enum CodingKeys: String, CodingKey {
        case name, coordinator, id, ttl, grace, http, command
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let name = try container.decodeValue(String.self, forKey: .name) else {
            throw SettingsError(field: "name", "is required")
        }
        guard let text = try container.decodeValue(String.self, forKey: .coordinator) else {
            throw SettingsError(field: "coordinator", "is required")
        }
        do {
            self.init(name: name, coordinator: try CoordinatorURL(parsing: text))
        } catch {
            throw SettingsError(field: "coordinator", "\(error)")
        }
        id = try container.decodeValue(String.self, forKey: .id)
        ttl = try container.decodeSetting(Duration.self, forKey: .ttl) ?? ttl
        grace = try container.decodeSetting(Duration.self, forKey: .grace)
        http = try container.decodeSetting(HostPort.self, forKey: .http)
        command = try container.decodeValue([String].self, forKey: .command) ?? []
    }

    /// Encodes the effective values: the candidate's id and the grace period as they apply.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(coordinator.description, forKey: .coordinator)
        try container.encode(candidate, forKey: .id)
        try container.encodeSetting(ttl, forKey: .ttl)
        try container.encodeSetting(effectiveGrace, forKey: .grace)
        try container.encodeSetting(http, forKey: .http)
        try container.encode(command.joined(separator: " "), forKey: .command)
    }
}
