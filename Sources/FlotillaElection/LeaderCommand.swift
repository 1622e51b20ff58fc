import FlotillaProcess
import Foundation
import Logging
import Synchronization

/// `flotilla elect -- CMD`: the leader's work is a child process, started once leadership is
/// proven and stopped (SIGTERM, then SIGKILL after the grace period) when it no longer is.
///
/// The child learns its term from its environment: `FLOTILLA_ELECTION` (the election's name),
/// `FLOTILLA_LEADER_ID` and `FLOTILLA_LEADER_TOKEN` (the fencing token to present to whatever it
/// writes to). It gets a parent-death signal: if `flotilla elect` is killed, so is the child.
public final class LeaderCommand: LeaderWork {
    public struct Configuration: Sendable {
        public var executable: String
        public var arguments: [String]
        /// The election's name, passed as `FLOTILLA_ELECTION`.
        public var election: String
        /// How long the child has to exit after SIGTERM before SIGKILL (default 1s).
        public var grace: Duration = .seconds(1)

        public init(executable: String, arguments: [String], election: String) {
            self.executable = executable
            self.arguments = arguments
            self.election = election
        }
    }

    public let configuration: Configuration
    /// Asked for a descriptor the child must inherit (the file backend's lock).
    private let coordinator: (any ElectionCoordinator)?
    private let logger: Logger
    /// How the child ended when it ended by itself (not stopped for a step-down).
    private let ownEnd = Mutex<ChildProcess.Termination?>(nil)

    public init(configuration: Configuration, coordinator: (any ElectionCoordinator)? = nil, logger: Logger) {
        self.configuration = configuration
        self.coordinator = coordinator
        self.logger = logger
    }

    /// The child's termination when it exited on its own, which ends `flotilla elect` with it.
    public var finishedBy: ChildProcess.Termination? { ownEnd.withLock { $0 } }

    public func lead(_ term: ElectionTerm, stop: StopSignal) async {
        var logger = self.logger
        logger[metadataKey: "election.token"] = "\(term.token)"
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_ELECTION"] = configuration.election
        environment["FLOTILLA_LEADER_ID"] = term.leaderID
        environment["FLOTILLA_LEADER_TOKEN"] = "\(term.token)"
        var spawn = ChildProcess.Configuration(
            executable: configuration.executable,
            arguments: configuration.arguments,
            environment: environment
        )
        spawn.standardInput = .inherit
        if let descriptor = coordinator?.descriptorForChild(of: term) {
            environment["FLOTILLA_LOCK_FD"] = "\(descriptor)"
            spawn.environment = environment
        }
        let child: ChildProcess
        do {
            child = try await ChildProcess.spawn(spawn)
        } catch {
            logger.error("cannot start the command", metadata: ["error": "\(error)"])
            ownEnd.withLock { $0 = .exited(127) }
            return
        }
        logger.info("command started", metadata: ["child.pid": "\(child.pid)"])

        enum First { case exited, stop }
        let first = await withTaskGroup(of: First.self) { group in
            group.addTask {
                // A command that ends by itself ends elect: 50 ms later is soon enough, and an idle
                // leader does not wake up 200 times a second.
                _ = await child.wait(interval: .milliseconds(50))
                return .exited
            }
            group.addTask {
                await stop.wait()
                return .stop
            }
            defer { group.cancelAll() }
            return await group.next() ?? .stop
        }
        switch first {
        case .exited:
            let termination = child.termination ?? .unknown
            ownEnd.withLock { $0 = termination }
            logger.notice("command exited", metadata: ["child.pid": "\(child.pid)", "child.status": "\(termination)"])
        case .stop:
            let termination = await child.stop(grace: configuration.grace)
            logger.notice("command stopped", metadata: ["child.pid": "\(child.pid)", "child.status": "\(termination)"])
        }
    }
}
