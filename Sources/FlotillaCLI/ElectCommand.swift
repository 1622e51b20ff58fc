import ArgumentParser
import FlotillaCore
import FlotillaElection
import FlotillaProcess
import FlotillaServer
import Foundation
import Logging
import NIOCore
import NIOPosix

struct ElectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elect",
        abstract: "Leader election on a coordinator: run a command only while leading, or tell local apps who leads.",
        discussion: """
            Candidates started with the same --name and --coordinator compete; one leads at a \
            time. The coordinator implements the consensus: file:PATH is an OS file lock on one \
            machine (released by the kernel the instant its holder dies); etcd://HOST:PORT[,…] \
            uses etcd's lease and election API (3.4 or later).

            With a command after --, the leader runs it with FLOTILLA_ELECTION, \
            FLOTILLA_LEADER_ID and FLOTILLA_LEADER_TOKEN in its environment. The token is a \
            fencing token: it strictly increases from term to term, and whatever the command \
            writes to must reject a lower token than the highest it saw. When leadership can no \
            longer be proven (no keep-alive acknowledged in time), the command gets SIGTERM, then \
            SIGKILL after --grace, before the lease can expire. When the command exits, elect \
            resigns and exits with its status. SIGTERM or SIGINT stop the command and resign, so \
            a standby takes over at once. The command dies with elect, even on SIGKILL.

            Without a command (sidecar mode), --http serves GET /leader and GET /leader/me.

            Examples:
              flotilla elect --name nightly --coordinator file:/run/flotilla/nightly.lock -- ./report.sh
              flotilla elect --name rebalancer --coordinator etcd://10.0.0.1:2379,10.0.0.2:2379 \\
                --http 127.0.0.1:8480 --admin 127.0.0.1:9180
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "The election's name: candidates with the same name compete.")
    var name: String

    @Option(help: "The coordinator: file:PATH or etcd://HOST:PORT[,HOST:PORT…].")
    var coordinator: String

    @Option(help: "This candidate's id (default: HOSTNAME-PID).")
    var id: String?

    @Option(
        help: "Lease time to live, from 1s to 1h (default: 5s). Keep-alives go every TTL/3.",
        transform: parseDuration
    )
    var ttl: Duration = .seconds(5)

    @Option(
        help: "Time the command has to exit after SIGTERM before SIGKILL (default: the smaller of 1s and TTL/5).",
        transform: parseDuration
    )
    var grace: Duration?

    @Option(
        help: "Sidecar listener, HOST:PORT: GET /leader and GET /leader/me (port 0 picks a free port).",
        transform: parseHostPort
    )
    var http: HostPort?

    @Argument(parsing: .postTerminator, help: "The command to run while leading, after --.")
    var command: [String] = []

    func validate() throws {
        _ = try roleConfiguration()
    }

    /// The flags as elect's settings.
    func roleConfiguration() throws -> ElectionRole.Configuration {
        let url: CoordinatorURL
        do {
            url = try CoordinatorURL(parsing: coordinator)
        } catch {
            throw ValidationError("--coordinator: \(error)")
        }
        var configuration = ElectionRole.Configuration(name: name, coordinator: url)
        configuration.id = id
        configuration.ttl = ttl
        configuration.grace = grace
        configuration.http = http
        configuration.command = command
        return try RoleLauncher.usable(configuration)
    }

    func run() async throws {
        let role = try await RoleLauncher.run(ElectionRole.self, configuration: try roleConfiguration(), common: common)
        if let ended = role.commandEnding {
            throw ExitCode(ended.shellStatus)
        }
    }
}
