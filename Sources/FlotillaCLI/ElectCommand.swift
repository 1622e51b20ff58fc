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
        _ = try settings()
    }

    /// The validated settings.
    struct Settings {
        var coordinator: CoordinatorURL
        var candidate: String
        var grace: Duration
        /// How long before the lease can expire the command is told to stop.
        var margin: Duration
    }

    func settings() throws -> Settings {
        guard !name.isEmpty, name.utf8.count <= 128, !name.contains(where: \.isNewline) else {
            throw ValidationError("--name must be 1 to 128 bytes on one line, got '\(name)'")
        }
        let url: CoordinatorURL
        do {
            url = try CoordinatorURL(parsing: coordinator)
        } catch {
            throw ValidationError("--coordinator: \(error)")
        }
        let candidate = id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        guard !candidate.isEmpty, candidate.utf8.count <= FileCoordinator.maximumIDLength,
            !candidate.contains(where: \.isNewline)
        else {
            throw ValidationError("--id must be 1 to \(FileCoordinator.maximumIDLength) bytes on one line")
        }
        guard ttl >= .seconds(1), ttl <= .seconds(3600) else {
            throw ValidationError("--ttl must be from 1s to 1h, got \(DurationText.format(ttl))")
        }
        let grace = self.grace ?? min(.seconds(1), ttl / 5)
        let margin = grace + max(ttl / 10, .milliseconds(100))
        guard grace >= .zero, margin <= ttl / 2 else {
            throw ValidationError(
                "--grace must leave time to renew the lease: at most \(DurationText.format(ttl / 2 - max(ttl / 10, .milliseconds(100)))) with --ttl \(DurationText.format(ttl))"
            )
        }
        guard !command.isEmpty || http != nil else {
            throw ValidationError(
                "give a command to run while leading (after --), or --http HOST:PORT for sidecar mode"
            )
        }
        return Settings(coordinator: url, candidate: candidate, grace: grace, margin: margin)
    }

    func run() async throws {
        let settings = try settings()
        let options = common
        let environment = RoleRunner.makeEnvironment(options, operations: [])
        let logger = environment.logger
        // The etcd client runs on the process-wide singleton loops, which outlive the role's group:
        // it is shut down after the role, whatever way the role ended.
        let coordinator = makeCoordinator(
            settings.coordinator,
            group: MultiThreadedEventLoopGroup.singleton,
            logger: logger
        )

        var electorConfiguration = Elector.Configuration(candidate: settings.candidate)
        electorConfiguration.margin = settings.margin
        electorConfiguration.observeInterval = min(ttl / 3, .seconds(1))
        var work: LeaderCommand?
        if let executable = command.first {
            var configuration = LeaderCommand.Configuration(
                executable: executable,
                arguments: Array(command.dropFirst()),
                election: name
            )
            configuration.grace = settings.grace
            work = LeaderCommand(configuration: configuration, coordinator: coordinator, logger: logger)
        }
        var electionLogger = logger
        electionLogger[metadataKey: "election.name"] = "\(name)"
        let elector = Elector(
            configuration: electorConfiguration,
            coordinator: coordinator,
            work: work,
            logger: electionLogger
        )
        let role = ElectionRole(
            configuration: .init(election: name, http: http),
            elector: elector,
            readiness: environment.readiness,
            metricsFactory: environment.metricsFactory,
            group: environment.group,
            logger: electionLogger
        )
        let info = RoleInfo(
            role: "elect",
            version: FlotillaVersion.current,
            settings: [
                "name": name,
                "coordinator": settings.coordinator.description,
                "id": settings.candidate,
                "ttl": DurationText.format(ttl),
                "grace": DurationText.format(settings.grace),
                "http": http?.description ?? "",
                "admin": common.admin.description,
                "command": command.joined(separator: " "),
            ]
        )
        electionLogger.info(
            "campaigning",
            metadata: ["coordinator": "\(coordinator.description)", "election.candidate": "\(settings.candidate)"]
        )
        do {
            try await RoleRunner.run(role: role, info: info, options: options, environment: environment) {}
        } catch {
            await coordinator.shutdown()
            throw error
        }
        await coordinator.shutdown()
        if let ended = work?.finishedBy {
            throw ExitCode(ended.shellStatus)
        }
    }

    private func makeCoordinator(
        _ url: CoordinatorURL,
        group: any EventLoopGroup,
        logger: Logger
    ) -> any ElectionCoordinator {
        switch url {
        case .file(let path):
            var configuration = FileCoordinator.Configuration(path: path)
            configuration.ttl = ttl
            return FileCoordinator(configuration: configuration)
        case .etcd(let endpoints):
            var configuration = EtcdCoordinator.Configuration(endpoints: endpoints, election: name)
            configuration.ttl = ttl
            return EtcdCoordinator(configuration: configuration, eventLoopGroup: group, logger: logger)
        }
    }
}
