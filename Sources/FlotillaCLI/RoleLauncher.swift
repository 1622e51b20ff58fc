import ArgumentParser
import FlotillaCore
import FlotillaServer
import Logging
import Metrics
import Prometheus

/// What the CLI adds to `RoleRunner`: the process-wide logging and metrics bootstrap, and usage
/// errors (exit 2) for settings that cannot be used.
enum RoleLauncher {
    /// Validates the settings, bootstraps logging and metrics, and runs role `R` until it drains.
    @discardableResult
    static func run<R: Role>(_ role: R.Type, configuration: R.Configuration, common: CommonOptions) async throws -> R {
        let settings = try common.settings()
        let configuration = try usable(configuration)
        let logger = bootstrapLogging(settings)
        let factory = PrometheusHelpFactory(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))
        MetricsSystem.bootstrap(factory)
        return try await RoleRunner.run(
            R.self,
            configuration: configuration,
            common: settings,
            metricsFactory: factory,
            logger: logger
        )
    }

    /// `configuration` when it validates; otherwise a usage error naming the flag.
    static func usable<C: RoleConfiguration>(_ configuration: C) throws -> C {
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.usageMessage)
        }
        return configuration
    }

    static func bootstrapLogging(_ settings: CommonSettings) -> Logger {
        let level = settings.logLevel
        switch settings.logFormat {
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
}

extension SettingsError {
    /// The error as the command line shows it: `--FIELD: MESSAGE`. A role's positional
    /// arguments (elect's command) are not a flag, and the message says what to give.
    var usageMessage: String {
        field == "command" ? message : "--\(field): \(message)"
    }
}
