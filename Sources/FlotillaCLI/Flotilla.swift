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
            var command = try parseAsRoot(Self.joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
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

    /// `--replicas -1` as `--replicas=-1`: ArgumentParser reads `-1` as an option and reports
    /// "Missing value", where the option's own check would say what range it takes. Stops at `--`
    /// (elect's command follows it untouched).
    static func joiningNegativeValues(_ arguments: [String]) -> [String] {
        var joined: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                joined += arguments[index...]
                break
            }
            if argument.hasPrefix("--"), !argument.contains("="), index + 1 < arguments.count,
                let next = arguments[index + 1].utf8.dropFirst().first, arguments[index + 1].hasPrefix("-"),
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) || next == UInt8(ascii: ".")
            {
                joined.append(argument + "=" + arguments[index + 1])
                index += 2
                continue
            }
            joined.append(argument)
            index += 1
        }
        return joined
    }

    /// Whether the command line asks for JSON log lines.
    private static var logsJSON: Bool {
        let arguments = CommandLine.arguments
        return arguments.contains("--log-format=json")
            || zip(arguments, arguments.dropFirst()).contains { $0 == "--log-format" && $1 == "json" }
    }
}
