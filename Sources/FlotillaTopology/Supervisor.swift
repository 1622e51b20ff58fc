import FlotillaProcess
import FlotillaServer
import Synchronization

/// Starts role processes, waits until each is ready, and stops them all in order on the way out,
/// however it ends: the local orchestrator behind `flotilla demo` (and the topology's `up`).
///
/// Every child is started with `--ready-file`: `start` returns once the child has bound its
/// listeners and written their ports, or throws with its last words when it exits first or takes
/// longer than `startTimeout`. Children are remembered from the moment they are spawned, so a
/// supervisor interrupted while one starts still stops it. `stopAll` stops the highest
/// `stopOrder` first (a proxy before the shards behind it, so that it does not see them go as
/// failures), children of the same order together: SIGTERM, which drains them, then SIGKILL after
/// `stopGrace`.
public final class Supervisor: Sendable {
    public struct Configuration: Sendable {
        /// How long a child may take to write its ready file (default 30 s: a debug build on a busy
        /// machine is slow).
        public var startTimeout: Duration = .seconds(30)
        /// How long a child may drain after SIGTERM before SIGKILL (default 5 s).
        public var stopGrace: Duration = .seconds(5)
        /// The executable children run (default: this process's own, so children are of the same build).
        public var executable = SupervisedProcess.executablePath

        public init() {}
    }

    /// A started child and the listeners it reported.
    public struct Child: Sendable {
        public var process: SupervisedProcess
        public var ready: ReadyFile.Contents
        /// Children with a higher order are stopped first.
        public var stopOrder: Int

        /// The port of listener `name` (`data`, `admin`); 0 when the child has none of that name.
        public func port(_ name: String) -> Int { ready.port(name) ?? 0 }
    }

    public let configuration: Configuration
    private let children = Mutex<[(process: SupervisedProcess, stopOrder: Int)]>([])

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Starts a child with `arguments` and waits until it is ready. With `attempts` above 1, a
    /// child that fails to start (a fixed port briefly taken by someone else's outgoing
    /// connection, say) is started again after 200 ms.
    public func start(name: String, arguments: [String], stopOrder: Int = 0, attempts: Int = 1) async throws -> Child {
        var lastError: any Error = ChildProcess.LaunchError(description: "\(name) was not started")
        for attempt in 1...max(attempts, 1) {
            do {
                return try await startOnce(name: name, arguments: arguments, stopOrder: stopOrder)
            } catch let error as ChildProcess.LaunchError {
                lastError = error
                if attempt < attempts { try await Task.sleep(for: .milliseconds(200)) }
            }
        }
        throw lastError
    }

    private func startOnce(name: String, arguments: [String], stopOrder: Int) async throws -> Child {
        let process = try await SupervisedProcess.spawn(
            name: name,
            arguments: arguments,
            executable: configuration.executable
        )
        // Registered before waiting, so that a supervisor interrupted now still stops it.
        children.withLock { $0.append((process, stopOrder)) }
        do {
            let ready = try await process.waitUntilReady(timeout: configuration.startTimeout)
            return Child(process: process, ready: ready, stopOrder: stopOrder)
        } catch {
            await process.stop(grace: .seconds(1))
            throw error
        }
    }

    /// Stops every child still running, highest `stopOrder` first, the same order together.
    /// Returns how each ended, in start order.
    @discardableResult
    public func stopAll() async -> [(name: String, ending: String)] {
        let all = children.withLock { $0 }
        for order in Set(all.map(\.stopOrder)).sorted(by: >) {
            await withTaskGroup(of: Void.self) { group in
                for child in all where child.stopOrder == order {
                    group.addTask { await child.process.stop(grace: self.configuration.stopGrace) }
                }
            }
        }
        return all.map { ($0.process.name, $0.process.exitDescription ?? "still running") }
    }

    /// Children not yet reaped.
    public var running: [SupervisedProcess] {
        children.withLock { $0 }.map(\.process).filter { !$0.hasExited() }
    }
}
