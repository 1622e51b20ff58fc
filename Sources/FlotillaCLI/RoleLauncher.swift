import FlotillaCore
import FlotillaServer
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Bootstraps logging and metrics and runs a role's services until a signal drains them.
enum RoleRunner {
    static func bootstrapLogging(_ options: CommonOptions) -> Logger {
        let level = options.logLevel
        switch options.logFormat {
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        return Logger(label: "flotilla")
    }

    /// Everything a role needs from the process: event loops, readiness, recorder, metrics.
    struct Environment {
        let group: MultiThreadedEventLoopGroup
        let readiness = Readiness()
        let recorder: OperationRecorder
        /// Backed by the registry that `/metrics` renders.
        let metricsFactory: PrometheusMetricsFactory
        let logger: Logger
    }

    static func makeEnvironment(_ options: CommonOptions, operations: [String]) -> Environment {
        let logger = bootstrapLogging(options)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threadCount)
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        MetricsSystem.bootstrap(factory)
        return Environment(
            group: group,
            recorder: OperationRecorder(operations: operations, group: group),
            metricsFactory: factory,
            logger: logger
        )
    }

    /// Runs the admin listener and the role until SIGTERM or SIGINT, then drains and exits.
    static func run(
        role: any Service,
        info: RoleInfo,
        options: CommonOptions,
        environment: Environment,
        shards: (any ShardAdminSource)? = nil,
        refreshMetrics: @escaping @Sendable () async -> Void
    ) async throws {
        let admin = AdminService(
            configuration: .init(listen: options.admin, slo: options.slo),
            role: info,
            readiness: environment.readiness,
            recorder: environment.recorder,
            registry: environment.metricsFactory.registry,
            metricsFactory: environment.metricsFactory,
            group: environment.group,
            logger: environment.logger,
            shards: shards,
            refreshMetrics: refreshMetrics
        )
        // Services stop in reverse order: the role drains first while the admin listener keeps
        // answering 503 on /readyz.
        let services = ServiceGroup(
            configuration: .init(
                // A role that ends by itself (elect, when its command exits) drains the rest.
                services: [
                    .init(service: admin), .init(service: role, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: environment.logger
            )
        )
        do {
            try await services.run()
        } catch {
            try? await environment.group.shutdownGracefully()
            throw error
        }
        try await environment.group.shutdownGracefully()
        environment.logger.info("stopped")
    }
}
