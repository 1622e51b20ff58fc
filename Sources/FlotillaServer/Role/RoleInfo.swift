/// What a role reports about itself on `GET /v1/status`.
public struct RoleInfo: Sendable {
    /// The role, e.g. `cache`.
    public var role: String
    public var version: String
    /// Effective settings by flag name.
    public var settings: [String: String]

    public init(role: String, version: String, settings: [String: String]) {
        self.role = role
        self.version = version
        self.settings = settings
    }
}

/// Flotilla's version, reported by every role.
public enum FlotillaVersion {
    public static let current = "0.1.0"
}
