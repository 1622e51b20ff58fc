import CoreMetrics
import FlotillaCore
import FlotillaElectionAPI
import FlotillaProcess
import FlotillaServer
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import OpenAPIHummingbird
import ServiceLifecycle

/// The `flotilla elect` role: the elector on its coordinator, the leader's command when there is
/// one, the sidecar listener when asked for, and readiness that follows the coordinator (ready
/// while it answers).
public struct ElectionRole: Role {
    public typealias Operation = NoOperation
    public static let name = "elect"
    /// etcd's client port 2379, with a 1 in front.
    public static let defaultAdminPort = 12379

    public let configuration: Configuration
    public let elector: Elector
    private let coordinator: any ElectionCoordinator
    private let work: LeaderCommand?
    private let readiness: Readiness
    private let metrics: ElectionMetrics
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(configuration: Configuration, environment: RoleEnvironment) {
        var logger = environment.logger
        logger[metadataKey: "election.name"] = "\(configuration.name)"
        // The etcd client runs on the process-wide singleton loops, which outlive the role's
        // group: it is shut down at the end of `run`, whatever way the role ended.
        let coordinator = Self.makeCoordinator(configuration, logger: environment.logger)
        var electorConfiguration = Elector.Configuration(candidate: configuration.candidate)
        electorConfiguration.margin = configuration.margin
        electorConfiguration.observeInterval = min(configuration.ttl / 3, .seconds(1))
        var work: LeaderCommand?
        if let executable = configuration.command.first {
            var command = LeaderCommand.Configuration(
                executable: executable,
                arguments: Array(configuration.command.dropFirst()),
                election: configuration.name
            )
            command.grace = configuration.effectiveGrace
            work = LeaderCommand(configuration: command, coordinator: coordinator, logger: environment.logger)
        }
        self.configuration = configuration
        self.coordinator = coordinator
        self.work = work
        self.elector = Elector(
            configuration: electorConfiguration,
            coordinator: coordinator,
            work: work,
            logger: logger
        )
        self.readiness = environment.readiness
        self.metrics = ElectionMetrics(factory: environment.metricsFactory)
        self.group = environment.group
        self.logger = logger
    }

    public static func listenerNames(_ configuration: Configuration) -> [String] {
        configuration.http == nil ? [] : ["data"]
    }

    /// How the leader's command ended, when its end ended the role (elect exits with its status).
    public var commandEnding: ChildProcess.Termination? { work?.finishedBy }

    /// Runs until the elector stops (shutdown, or the leader's command ended).
    public func run() async throws {
        logger.info(
            "campaigning",
            metadata: ["coordinator": "\(coordinator.description)", "election.candidate": "\(configuration.candidate)"]
        )
        do {
            try await campaign()
        } catch {
            await coordinator.shutdown()
            throw error
        }
        await coordinator.shutdown()
    }

    private func campaign() async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            if let http = configuration.http {
                let app = try makeSidecar(http)
                let readiness = self.readiness
                tasks.addTask {
                    try await ListenError.whileBinding(
                        flag: "--listen",
                        address: http,
                        isBound: { readiness.listeners["data"] != nil }
                    ) {
                        try await app.run()
                    }
                }
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

    private static func makeCoordinator(_ configuration: Configuration, logger: Logger) -> any ElectionCoordinator {
        switch configuration.coordinator {
        case .file(let path):
            var file = FileCoordinator.Configuration(path: path)
            file.ttl = configuration.ttl
            return FileCoordinator(configuration: file)
        case .etcd(let endpoints):
            var etcd = EtcdCoordinator.Configuration(endpoints: endpoints, election: configuration.name)
            etcd.ttl = configuration.ttl
            return EtcdCoordinator(
                configuration: etcd,
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                logger: logger
            )
        }
    }

    private func makeSidecar(_ listen: HostPort) throws -> some ApplicationProtocol {
        let router = Router()
        let api = SidecarAPI(election: configuration.name, elector: elector)
        try api.registerHandlers(on: router)
        let logger = self.logger
        let readiness = self.readiness
        return Application(
            router: router,
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "flotilla-elect"),
            onServerRunning: { channel in
                let address = channel.localAddress.map(TCPServer.describe) ?? "?"
                logger.info("listening", metadata: ["listener": "data", "address": "\(address)"])
                readiness.bound("data", address: address)
            },
            // The process-wide loops, not the role's: Hummingbird releases its quiescing helper
            // after `run()` returns, which schedules on the loop it was made on; on the role's
            // group, shut down by then, SwiftNIO complained (1 drain in 5).
            eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton),
            logger: AdminService.quiet(logger)
        )
    }
}
