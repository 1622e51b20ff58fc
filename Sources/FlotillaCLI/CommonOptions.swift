import ArgumentParser
import FlotillaCore
import FlotillaServer
import Logging
import NIOCore
import NIOPosix

/// The data listener of the roles that have one (elect's sidecar listens on --http instead).
struct ListenOption: ParsableArguments {
    @Option(
        help: "Data listener, HOST:PORT (default: the role's port, 11211 for cache; port 0 picks a free port).",
        transform: parseHostPort
    )
    var listen: HostPort?
}

/// The bounds on a data listener's clients, for the roles that serve clients.
struct ClientLimitOptions: ParsableArguments {
    @Option(help: "Most client connections open at once.")
    var maxConnections = 1024

    @Option(
        help:
            "Memory for requests not yet fully received, across all connections; a client that would pass it is refused (default: 64MiB).",
        transform: parseByteSize
    )
    var requestMemory = ByteSize(bytes: 64 << 20)
}

/// The flags every long-running role takes (DESIGN.md §2).
struct CommonOptions: ParsableArguments {
    @Option(
        help: """
            Address of the admin HTTP listener, HOST:PORT (default: 127.0.0.1 and the role's own port: \
            cache 11311, cache-proxy 22322, elect 12379).
            """,
        transform: parseHostPort
    )
    var admin: HostPort?

    @Option(help: "Event-loop threads (default: the number of cores).")
    var threads: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.", transform: parseLogLevel)
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text or json (one JSON object per line on standard error).")
    var logFormat: CommonSettings.LogFormat = .text

    @Option(help: "Service-level objective, e.g. 'p99<1ms,success>=99.9%'.", transform: parseSLO)
    var slo: SLOSpec?

    @Option(
        help: """
            On SIGTERM, keep serving this long with /readyz answering 503 before refusing new \
            connections, so that a load balancer's health check sees the role leave (default: 0s).
            """,
        transform: parseDuration
    )
    var drainDelay: Duration = .zero

    @Option(help: "Longest wait for open connections to finish on shutdown (default: 10s).", transform: parseDuration)
    var drainTimeout: Duration = .seconds(10)

    @Option(
        help: ArgumentHelp(
            "Write the bound listeners as JSON to this file once they are all bound (for supervisors and tests).",
            valueName: "path"
        )
    )
    var readyFile: String?

    func validate() throws {
        _ = try settings()
    }

    /// The flags as the settings every role shares.
    func settings() throws -> CommonSettings {
        var settings = CommonSettings()
        settings.admin = admin
        settings.threads = threads
        settings.logLevel = logLevel
        settings.logFormat = logFormat
        settings.slo = slo
        settings.drainDelay = drainDelay
        settings.drainTimeout = drainTimeout
        settings.readyFile = readyFile
        return try RoleLauncher.usable(settings)
    }

    var threadCount: Int { threads ?? System.coreCount }
}

extension CommonSettings.LogFormat: ExpressibleByArgument {}

func parseHostPort(_ text: String) throws -> HostPort {
    guard let address = HostPort(parsing: text) else {
        throw ValidationError("'\(text)' is not HOST:PORT with a port from 0 to 65535")
    }
    return address
}

func parseLogLevel(_ text: String) throws -> Logger.Level {
    guard let level = Logger.Level(rawValue: text.lowercased()) else {
        throw ValidationError("'\(text)' is not a log level (trace, debug, info, notice, warning, error, critical)")
    }
    return level
}

func parseSLO(_ text: String) throws -> SLOSpec {
    do {
        return try SLOSpec(parsing: text)
    } catch {
        throw ValidationError(error.description)
    }
}

func parseDuration(_ text: String) throws -> Duration {
    guard let duration = DurationText.parse(text) else {
        throw ValidationError("'\(text)' is not a duration such as 250ms, 5s or 1m")
    }
    return duration
}

func parseByteSize(_ text: String) throws -> ByteSize {
    guard let size = ByteSize(parsing: text) else {
        throw ValidationError("'\(text)' is not a size such as 64MiB, 512KiB or 1048576")
    }
    return size
}

/// A rate: `100`, `100/s`, `6000/min` or `360000/h`, in events per second.
func parseRate(_ text: String) throws -> Double {
    let units: [(suffix: String, seconds: Double)] = [("/s", 1), ("/min", 60), ("/m", 60), ("/h", 3600), ("", 1)]
    for (suffix, seconds) in units where text.hasSuffix(suffix) {
        if let value = Double(text.dropLast(suffix.count)), value.isFinite { return value / seconds }
    }
    throw ValidationError("'\(text)' is not a rate such as 100/s, 6000/min or 100")
}
