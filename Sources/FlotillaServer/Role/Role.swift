import FlotillaCore
import Hummingbird
import ServiceLifecycle

/// A long-running role of `flotilla` (`cache`, `cache-proxy`, `elect`, …): a `Service` built from
/// its own settings and the process's shared environment, with its operations, its admin routes
/// and its gauges. `RoleRunner` runs any role beside the common admin listener; it knows none of
/// them.
///
/// A new role declares its settings (`Configuration`, decoded from flags or a topology file),
/// its operations (the recorder's dimension), and, when it has admin endpoints of its own, an
/// OpenAPI document of its own whose generated handlers it registers in `registerAdminRoutes`.
public protocol Role: Service {
    /// The role's settings: the same type for flags, topology files and `/v1/status`.
    associatedtype Configuration: RoleConfiguration
    /// What the role records per request (latency, errors), as a bounded dimension.
    associatedtype Operation: RoleOperation

    /// The role's name, as on the command line and in `/v1/status` (`cache-proxy`).
    static var name: String { get }

    /// The admin listener's port when `--admin` is not given, on 127.0.0.1: one per role, so that a
    /// cache, a proxy and an elect sidecar started with their defaults on one host all start, and
    /// outside Prometheus exporters' 9100–9999 (node_exporter is 9100).
    static var defaultAdminPort: Int { get }

    /// Builds the role; it binds nothing until `run()`.
    init(configuration: Configuration, environment: RoleEnvironment) throws

    /// The data listeners the role binds, by name, as `/v1/status` and the ready file report
    /// them (`data` by default). The admin listener is always there too.
    static func listenerNames(_ configuration: Configuration) -> [String]

    /// Adds the role's own admin endpoints beside `/healthz /readyz /metrics /v1/status`.
    func registerAdminRoutes(on router: Router<BasicRequestContext>) throws

    /// Brings the role's gauges up to date; called before each scrape of `/metrics`.
    func refreshMetrics() async
}

extension Role {
    public static func listenerNames(_ configuration: Configuration) -> [String] { ["data"] }
    public func registerAdminRoutes(on router: Router<BasicRequestContext>) throws {}
    public func refreshMetrics() async {}

    /// The recorder's operation names, in `Operation.allCases` order (the index recorded).
    public static var operationNames: [String] { Operation.allCases.map(\.name) }
}

/// A role without per-request operations of its own (`elect`).
public enum NoOperation: RoleOperation {
    public var name: String { switch self {} }
}

/// A role's settings: `Codable` with the flags' names as keys (`max-item-size`), every field
/// optional in a document and defaulted as the flag is, and checked as a whole by `validate()`.
public protocol RoleConfiguration: Codable, Sendable {
    /// Throws a `SettingsError` naming the first field that cannot be used.
    func validate() throws(SettingsError)
}
