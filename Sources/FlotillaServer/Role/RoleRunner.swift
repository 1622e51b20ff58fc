import FlotillaCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Runs any `Role` beside the common admin listener until SIGTERM or SIGINT, then drains it.
///
/// The runner owns what every role shares: one event-loop group, readiness and listeners, the
/// operation recorder, the admin listener with the role's own routes mounted, the settings shown
/// on `/v1/status` (encoded from the role's own configuration, so they cannot drift from it),
/// and the ready file.
public enum RoleRunner {
    /// Builds `R` from `configuration`, runs it until a signal or its own end, and returns it
    /// (elect reads its command's exit status from it).
    @discardableResult
    public static func run<R: Role>(
        _ role: R.Type,
        configuration: R.Configuration,
        common: CommonSettings,
        metricsFactory: PrometheusHelpFactory,
        logger: Logger
    ) async throws -> R {
        var common = common
        common.admin = common.admin ?? HostPort(host: "127.0.0.1", port: R.defaultAdminPort)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: common.threadCount)
        let readiness = Readiness()
        readiness.expectListeners(["admin"] + R.listenerNames(configuration))
        let environment = RoleEnvironment(
            group: group,
            threads: common.threadCount,
            readiness: readiness,
            recorder: OperationRecorder(operations: R.operationNames, group: group),
            metricsFactory: metricsFactory,
            logger: logger,
            drainTimeout: common.drainTimeout
        )
        let readyFile = common.readyFile.map(ReadyFile.init(path:))
        readyFile?.remove()
        defer { readyFile?.remove() }
        do {
            let instance = try R(configuration: configuration, environment: environment)
            let info = RoleInfo(
                role: R.name,
                version: FlotillaVersion.current,
                settings: try SettingsSummary.merge(configuration, common)
            )
            let admin = AdminService(
                configuration: .init(listen: common.admin!, slo: common.slo),
                role: info,
                readiness: readiness,
                recorder: environment.recorder,
                registry: metricsFactory.registry,
                metricsFactory: metricsFactory,
                logger: logger,
                roleRoutes: { router in try instance.registerAdminRoutes(on: router) },
                refreshMetrics: { await instance.refreshMetrics() }
            )
            // Services stop in reverse order: the drain delay first (503 on /readyz while the role
            // still serves), then the role drains while the admin listener keeps answering 503, then
            // the admin listener. A role that ends by itself (elect, when its command exits) drains
            // the rest.
            let services = ServiceGroup(
                configuration: .init(
                    services: [
                        .init(service: admin),
                        .init(
                            service: ReadyFileWriter(file: readyFile, role: R.name, readiness: readiness),
                            successTerminationBehavior: .ignore
                        ),
                        .init(service: instance, successTerminationBehavior: .gracefullyShutdownGroup),
                        .init(
                            service: DrainDelay(delay: common.drainDelay, readiness: readiness, logger: logger),
                            successTerminationBehavior: .ignore
                        ),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            try await services.run()
            try await group.shutdownGracefully()
            logger.info("stopped")
            return instance
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }
}

/// `--drain-delay`: on shutdown, the first service told to stop. It reports draining (`/readyz`
/// 503) and waits out the delay while every listener still serves; then the role drains.
private struct DrainDelay: Service {
    let delay: Duration
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        // Until the shutdown begins (or the group ends).
        try? await gracefulShutdown()
        guard delay > .zero, !Task.isCancelled else { return }
        readiness.markDraining()
        logger.info(
            "draining: /readyz answers 503, still serving for the drain delay",
            metadata: ["drain-delay": "\(delay.settingText)"]
        )
        try? await Task.sleep(for: delay)
    }
}

/// Writes the ready file once every listener is bound, and is done.
private struct ReadyFileWriter: Service {
    let file: ReadyFile?
    let role: String
    let readiness: Readiness

    func run() async throws {
        guard let file else { return }
        await cancelWhenGracefulShutdown {
            await readiness.allListenersBound()
            guard !Task.isCancelled else { return }
            do {
                try file.write(role: role, listeners: readiness.listeners)
            } catch {
                // The supervisor waiting on the file times out and says so; the role serves on.
                FileHandle.standardError.write(Data("flotilla: cannot write the ready file: \(error)\n".utf8))
            }
        }
    }
}
