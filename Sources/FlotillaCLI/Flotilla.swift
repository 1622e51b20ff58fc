import ArgumentParser
import FlotillaServer

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
        subcommands: [CacheCommand.self, PlanCommand.self]
    )
}
