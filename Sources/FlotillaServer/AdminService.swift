import FlotillaAdminAPI
import FlotillaCore
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import OpenAPIHummingbird
import Prometheus
import ServiceLifecycle

/// The admin listener every role serves: `/healthz`, `/readyz`, `/metrics`, `/v1/status`,
/// generated from `openapi.yaml`. It keeps answering while the role drains, so that probes
/// see 503 on `/readyz` until the process exits.
public struct AdminService: Service {
    public struct Configuration: Sendable {
        /// Address of the admin listener (port 0: any free port, reported in the log).
        public var listen: HostPort
        /// The role's SLO, evaluated on every status request.
        public var slo: SLOSpec?

        public init(listen: HostPort, slo: SLOSpec? = nil) {
            self.listen = listen
            self.slo = slo
        }
    }

    private let configuration: Configuration
    private let api: AdminAPI
    private let logger: Logger
    /// The role's own endpoints (its own OpenAPI document), mounted beside the common ones.
    private let roleRoutes: @Sendable (Router<BasicRequestContext>) throws -> Void

    public init(
        configuration: Configuration,
        role: RoleInfo,
        readiness: Readiness,
        recorder: OperationRecorder,
        registry: PrometheusCollectorRegistry,
        metricsFactory: any MetricsFactory,
        logger: Logger,
        roleRoutes: @escaping @Sendable (Router<BasicRequestContext>) throws -> Void = { _ in },
        refreshMetrics: @escaping @Sendable () async -> Void = {}
    ) {
        self.roleRoutes = roleRoutes
        self.configuration = configuration
        self.logger = logger
        self.api = AdminAPI(
            role: role,
            readiness: readiness,
            recorder: recorder,
            slo: configuration.slo,
            registry: registry,
            metrics: AdminMetrics(operations: recorder.operations, factory: metricsFactory),
            rates: RateWindow(),
            started: .now,
            refreshMetrics: refreshMetrics
        )
    }

    public func run() async throws {
        let router = Router()
        router.add(middleware: ProblemNotFoundMiddleware(role: api.role.role))
        try api.registerHandlers(on: router)
        try roleRoutes(router)
        let logger = self.logger
        let readiness = api.readiness
        let app = Application(
            router: router,
            configuration: .init(
                address: .hostname(configuration.listen.host, port: configuration.listen.port),
                serverName: "flotilla"
            ),
            onServerRunning: { channel in
                let address = channel.localAddress.map(TCPServer.describe) ?? "?"
                logger.info("listening", metadata: ["listener": "admin", "address": "\(address)"])
                readiness.bound("admin", address: address)
            },
            // The process-wide loops, not the role's: Hummingbird releases its quiescing helper
            // after `run()` returns, which schedules on the loop it was made on; on the role's
            // group, shut down by then, SwiftNIO complained (1 drain in 5).
            eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton),
            logger: Self.quiet(logger)
        )
        let api = self.api
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask {
                // Samples totals once a second for the rate window.
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        api.rates.record(await api.recorder.totals())
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
            try await ListenError.whileBinding(
                flag: "--admin",
                address: configuration.listen,
                isBound: { readiness.listeners["admin"] != nil }
            ) {
                try await app.run()
            }
        }
    }

    /// Hummingbird's own logger: it would log a failed bind twice before the error reaches the
    /// user, and its "started" line repeats the `listening` line; the role logs what matters.
    public static func quiet(_ logger: Logger) -> Logger {
        var quiet = logger
        quiet.logLevel = .critical
        return quiet
    }
}
