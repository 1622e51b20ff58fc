import CFlotillaSpawn
import FlotillaCore
import Foundation
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A process this one started: signal it, reap it, stop it with a grace period.
///
/// Started by `spawn`, which can give it a parent-death signal: on Linux the kernel then sends that
/// signal (SIGKILL by default) when this process dies, however it dies, so a child never outlives
/// its supervisor. The kernel ties that signal to the *thread* that forked, so every child is
/// forked from one thread that lives as long as the process.
public final class ChildProcess: Sendable {
    /// Where a child's standard stream goes.
    public enum Stream: Sendable {
        /// The parent's own descriptor.
        case inherit
        /// /dev/null.
        case null
        /// A descriptor of the parent's (it stays open in the parent; close it after spawning).
        case descriptor(Int32)

        var rawValue: Int32 {
            switch self {
            case .inherit: FLOTILLA_SPAWN_INHERIT
            case .null: FLOTILLA_SPAWN_DEVNULL
            case .descriptor(let descriptor): descriptor
            }
        }
    }

    /// How to start a child.
    public struct Configuration: Sendable {
        /// The executable's path; a name without `/` is looked up in PATH.
        public var executable: String
        /// `argv[0]`; defaults to `executable`.
        public var argumentZero: String?
        public var arguments: [String]
        /// The whole environment of the child (default: this process's).
        public var environment: [String: String]
        public var standardInput: Stream = .null
        public var standardOutput: Stream = .inherit
        public var standardError: Stream = .inherit
        /// A process group of its own (default true): Ctrl-C at the terminal then reaches the
        /// supervisor alone, which stops the child in order; signals go to the whole group.
        public var newProcessGroup = true
        /// Sent by the kernel when this process dies (default SIGKILL); nil for none.
        public var parentDeathSignal: Int32? = SIGKILL

        public init(executable: String, arguments: [String], environment: [String: String]? = nil) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment ?? ProcessInfo.processInfo.environment
        }
    }

    /// A child that could not be started.
    public struct LaunchError: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// How a child ended.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)
        /// Reaped by someone else (its status is unknown).
        case unknown

        init(waitStatus raw: Int32) {
            let signal = raw & 0x7F
            self = signal == 0 ? .exited((raw >> 8) & 0xFF) : .signalled(signal)
        }

        /// The status a shell would report: the exit code, or 128 + the signal.
        public var shellStatus: Int32 {
            switch self {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            case .unknown: 1
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exit \(code)"
            case .signalled(let signal): "killed by signal \(signal)"
            case .unknown: "reaped elsewhere"
            }
        }
    }

    public let pid: pid_t
    /// Whether signals go to the child's whole process group.
    private let ownGroup: Bool
    /// The termination once reaped. Signals are sent under this lock, so never to a reaped (and
    /// possibly reused) process id.
    private let reaped = Mutex<Termination?>(nil)

    private init(pid: pid_t, ownGroup: Bool) {
        self.pid = pid
        self.ownGroup = ownGroup
    }

    /// The one thread every child is forked from (see the type's documentation). Never shut down.
    private static let spawnThread: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    /// Held while spawning: descriptors a caller made for one child (made close-on-exec in two
    /// steps on platforms without `pipe2`) must not leak into another spawned meanwhile.
    public static let spawnLock = Mutex(())

    /// Starts a child.
    public static func spawn(_ configuration: Configuration) async throws -> ChildProcess {
        try await spawnThread.runIfActive {
            try spawnLock.withLock { _ in try spawnNow(configuration) }
        }
    }

    private static func spawnNow(_ configuration: Configuration) throws -> ChildProcess {
        guard let path = resolve(configuration.executable, environment: configuration.environment) else {
            throw LaunchError(description: "cannot start \(configuration.executable): not found in PATH")
        }
        let argv =
            ([configuration.argumentZero ?? configuration.executable] + configuration.arguments).map { strdup($0) } + [
                nil
            ]
        let envp = configuration.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let result = flotilla_spawn(
            path,
            argv,
            envp,
            configuration.standardInput.rawValue,
            configuration.standardOutput.rawValue,
            configuration.standardError.rawValue,
            configuration.newProcessGroup ? 1 : 0,
            configuration.parentDeathSignal ?? 0,
            &pid
        )
        guard result == 0 else {
            throw LaunchError(
                description: "cannot start \(configuration.executable): \(String(cString: strerror(result)))"
            )
        }
        return ChildProcess(pid: pid, ownGroup: configuration.newProcessGroup)
    }

    /// `executable` itself when it holds a `/`, else the first match in PATH.
    private static func resolve(_ executable: String, environment: [String: String]) -> String? {
        if executable.contains("/") { return executable }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(executable)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// A pipe whose two ends are close-on-exec: hand the write end to `spawn` as a stream (dup2
    /// clears the flag on the child's copy), then close it here.
    public static func makePipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        let result = flotilla_pipe_cloexec(&ends)
        guard result == 0 else {
            throw LaunchError(description: "cannot create a pipe: \(String(cString: strerror(result)))")
        }
        return (ends[0], ends[1])
    }

    // MARK: Signals and exit

    /// Sends `signal` (to the child's process group when it has one) unless it was already reaped.
    public func send(_ signal: Int32) {
        reaped.withLock { termination in
            guard termination == nil else { return }
            if ownGroup, kill(-pid, signal) == 0 { return }
            _ = kill(pid, signal)
        }
    }

    /// Reaps the child if it has exited; true once it has.
    public func hasExited() -> Bool {
        reaped.withLock { termination in
            if termination != nil { return true }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                termination = Termination(waitStatus: raw)
                return true
            }
            if result < 0, errno == ECHILD {
                termination = .unknown
                return true
            }
            return false
        }
    }

    /// How the child ended; nil while it runs.
    public var termination: Termination? {
        _ = hasExited()
        return reaped.withLock { $0 }
    }

    /// Waits up to `timeout` for the child to exit; true when it has. Polls every `interval`
    /// without relying on `Task.sleep`, which returns at once in a cancelled task: a shutdown must
    /// wait all the same.
    public func waitForExit(timeout: Duration, interval: Duration = .milliseconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        let micros = UInt32(clamping: max(1, interval.nanoseconds / 1000))
        while !hasExited() {
            guard ContinuousClock.now < deadline else { return false }
            if Task.isCancelled {
                usleep(micros)
            } else {
                try? await Task.sleep(for: interval)
            }
        }
        return true
    }

    /// Waits for the child to exit, checking every `interval`, and returns how it ended; nil when
    /// the task is cancelled first.
    public func wait(interval: Duration = .milliseconds(5)) async -> Termination? {
        while !hasExited() {
            if Task.isCancelled { return nil }
            try? await Task.sleep(for: interval)
        }
        return termination
    }

    /// SIGTERM, then SIGKILL after `grace`; the child is reaped either way.
    @discardableResult
    public func stop(grace: Duration) async -> Termination {
        send(SIGTERM)
        // Polled each millisecond: a successor waits on this stop (a handover's critical path).
        if await waitForExit(timeout: grace, interval: .milliseconds(1)) { return termination ?? .unknown }
        send(SIGKILL)
        _ = await waitForExit(timeout: .seconds(5))
        return termination ?? .unknown
    }

    /// SIGKILL, no drain: a crash, as far as its peers can tell.
    public func crash() async {
        send(SIGKILL)
        _ = await waitForExit(timeout: .seconds(5))
    }
}
