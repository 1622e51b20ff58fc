import CoreMetrics
import FlotillaCore
import FlotillaElectionAPI
import FlotillaServer
import Hummingbird
import Logging
import NIOCore
import OpenAPIHummingbird
import ServiceLifecycle

/// The `flotilla elect` role: the elector, the sidecar listener when asked for, and readiness
/// that follows the coordinator (ready while it answers).
public struct ElectionRole: Service {
    public struct Configuration: Sendable {
        /// The election's name (`--name`).
        public var election: String
        /// The sidecar's listener (`--http`); none by default.
        public var http: HostPort?

        public init(election: String, http: HostPort? = nil) {
            self.election = election
            self.http = http
        }
    }

    public let configuration: Configuration
    public let elector: Elector
    private let readiness: Readiness
    private let metrics: ElectionMetrics
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(
        configuration: Configuration,
        elector: Elector,
        readiness: Readiness,
        metricsFactory: any MetricsFactory,
        group: any EventLoopGroup,
        logger: Logger
    ) {
        self.configuration = configuration
        self.elector = elector
        self.readiness = readiness
        self.metrics = ElectionMetrics(factory: metricsFactory)
        self.group = group
        self.logger = logger
    }

    /// Runs until the elector stops (shutdown, or the leader's command ended).
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            if let http = configuration.http {
                let app = try makeSidecar(http)
                tasks.addTask { try await app.run() }
            }
            tasks.addTask {
                // Readiness and the gauges follow the elector.
                while !Task.isCancelled {
                    let status = elector.status
                    readiness.set(ready: status.coordinatorReachable)
                    metrics.update(with: status)
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            try await elector.run()
            readiness.markDraining()
            tasks.cancelAll()
            while let _ = try await tasks.next() {}
        }
    }

    private func makeSidecar(_ listen: HostPort) throws -> some ApplicationProtocol {
        let router = Router()
        let api = SidecarAPI(election: configuration.election, elector: elector)
        try api.registerHandlers(on: router)
        let logger = self.logger
        return Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "flotilla-elect"),
            onServerRunning: { channel in
                logger.info(
                    "listening",
                    metadata: ["listener": "data", "address": "\(channel.localAddress.map(TCPServer.describe) ?? "?")"]
                )
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
    }
}
