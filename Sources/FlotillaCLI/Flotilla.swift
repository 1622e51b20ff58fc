import ArgumentParser
import FlotillaServer
import Foundation

@main
struct Flotilla: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flotilla",
        abstract: "Distributed-system design patterns as production network servers.",
        discussion: """
            Each role is a network server with the same operational surface: a data listener \
            (--listen), an admin listener (--admin) serving /healthz, /readyz, /metrics and \
            /v1/status, an SLO (--slo) and a graceful drain on SIGTERM or SIGINT.
            """,
        version: FlotillaVersion.current,
        subcommands: [
            DemoCommand.self, CacheCommand.self, CacheProxyCommand.self, ElectCommand.self, BenchCommand.self,
            PlanCommand.self,
        ]
    )

    /// As ArgumentParser's own `main`, but a usage error exits with status 2 (not 64), the
    /// convention of command-line tools and the one `flotilla bench` documents (0 met, 1 missed).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            // With --log-format json the last line is JSON too, as every line before it.
            let code = exitCode(for: error)
            if Self.logsJSON, code != .success, !(error is ExitCode) {
                JSONLogHandler.writeError(message(for: error))
                exit(withError: ExitCode(code == .validationFailure ? 2 : code.rawValue))
            }
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }

    /// Whether the command line asks for JSON log lines.
    private static var logsJSON: Bool {
        let arguments = CommandLine.arguments
        return arguments.contains("--log-format=json")
            || zip(arguments, arguments.dropFirst()).contains { $0 == "--log-format" && $1 == "json" }
    }
}
