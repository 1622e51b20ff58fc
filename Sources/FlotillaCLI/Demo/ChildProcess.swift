import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `flotilla` process started by the demo.
///
/// Spawned in a process group of its own, so that Ctrl-C at the terminal reaches the demo alone and
/// the demo stops its children in order; with the demo's shutdown signals unblocked and at their
/// default action, whatever the spawning thread had. Its standard error is drained on a thread of
/// its own (a child that logs more than a pipe holds would otherwise stall) and read for the
/// `listening` lines of `--log-format json`.
final class ChildProcess: Sendable {
    /// The ports a child reported in its `listening` log lines.
    struct Listeners: Sendable {
        var data: Int
        var admin: Int
    }

    /// A child that could not be started, or did not come up.
    struct LaunchError: Error, CustomStringConvertible {
        var description: String
    }

    let name: String
    let pid: pid_t
    private let log: ChildLog
    /// The wait status once reaped. Signals are sent under this lock, so never to a reaped (and
    /// possibly reused) process id.
    private let waitStatus = Mutex<Int32?>(nil)

    private init(name: String, pid: pid_t, log: ChildLog) {
        self.name = name
        self.pid = pid
        self.log = log
    }

    /// The running executable, to start children of the same build. `/proc/self/exe` still
    /// names it when the file was replaced by a rebuild meanwhile.
    static var executablePath: String {
        #if os(Linux)
        "/proc/self/exe"
        #else
        CommandLine.arguments[0]
        #endif
    }

    /// A readable name for the executable, for the children's `argv[0]`.
    static var executableName: String {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 {
            return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        #endif
        return CommandLine.arguments[0]
    }

    /// Held from creating a child's pipe to spawning it: the pipe is made close-on-exec in two
    /// steps (Glibc's module does not offer `pipe2`), and a child spawned in between by another
    /// thread would inherit its ends.
    private static let spawnLock = Mutex(())

    static func spawn(name: String, arguments: [String]) throws -> ChildProcess {
        try spawnLock.withLock { _ in try spawnLocked(name: name, arguments: arguments) }
    }

    private static func spawnLocked(name: String, arguments: [String]) throws -> ChildProcess {
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            throw LaunchError(description: "cannot create a pipe for \(name): errno \(errno)")
        }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        // dup2 clears close-on-exec on the copy, so the child keeps its stderr and nothing else.
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes,
            Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        )

        let argv = ([executableName] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let result = posix_spawn(&pid, executablePath, &actions, &attributes, argv, envp)
        close(writeEnd)
        guard result == 0 else {
            close(readEnd)
            throw LaunchError(description: "cannot start \(name): \(String(cString: strerror(result)))")
        }
        let log = ChildLog()
        log.startDraining(readEnd, threadName: "demo.\(name).stderr")
        return ChildProcess(name: name, pid: pid, log: log)
    }

    // MARK: Listeners

    /// Waits for both `listening` lines; throws, with the child's last words, when it exits first
    /// or the timeout passes.
    func waitForListeners(timeout: Duration) async throws -> Listeners {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let listeners = log.listeners { return listeners }
            if log.ended || hasExited() {
                // The last lines may still be in the pipe: give the drain a moment.
                try await Task.sleep(for: .milliseconds(50))
                throw LaunchError(description: "\(name) exited before it listened: \(lastWords())")
            }
            guard ContinuousClock.now < deadline else {
                throw LaunchError(description: "\(name) did not report its listeners within \(timeout): \(lastWords())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The last lines the child wrote, for error messages.
    func lastWords() -> String {
        let lines = log.tail()
        return lines.isEmpty ? "(it wrote nothing)" : lines.suffix(5).joined(separator: " | ")
    }

    // MARK: Signals and exit

    /// Sends `signal` unless the child was already reaped.
    func send(_ signal: Int32) {
        waitStatus.withLock { status in
            if status == nil { _ = kill(pid, signal) }
        }
    }

    /// Reaps the child if it has exited; true once it has.
    func hasExited() -> Bool {
        waitStatus.withLock { status in
            if status != nil { return true }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                status = raw
                return true
            }
            if result < 0, errno == ECHILD {
                status = -1
                return true
            }
            return false
        }
    }

    /// How the child ended, in words; nil while it runs.
    var exitDescription: String? {
        guard hasExited(), let status = waitStatus.withLock({ $0 }) else { return nil }
        if status == -1 { return "reaped elsewhere" }
        let signal = status & 0x7F
        return signal == 0 ? "exit \((status >> 8) & 0xFF)" : "killed by signal \(signal)"
    }

    /// Waits up to `timeout` for the child to exit; true when it has. Polls without relying on
    /// `Task.sleep`, which returns at once in a cancelled task: shutdown must wait all the same.
    func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !hasExited() {
            guard ContinuousClock.now < deadline else { return false }
            if Task.isCancelled {
                usleep(10_000)
            } else {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        return true
    }

    /// SIGTERM (the child drains), then SIGKILL after `grace`; the child is reaped either way.
    func stop(grace: Duration) async {
        send(SIGTERM)
        if await waitForExit(timeout: grace) { return }
        send(SIGKILL)
        _ = await waitForExit(timeout: .seconds(5))
    }

    /// SIGKILL, no drain: a crash, as far as its peers can tell.
    func crash() async {
        send(SIGKILL)
        _ = await waitForExit(timeout: .seconds(5))
    }
}

/// A child's standard error, line by line: the last lines for error messages, and the listeners.
private final class ChildLog: Sendable {
    private struct State {
        var lines: [String] = []
        var partial: [UInt8] = []
        var data: Int?
        var admin: Int?
        var ended = false
    }

    /// The fields of a `--log-format json` line that the demo reads.
    private struct LogLine: Decodable {
        var message: String
        var listener: String?
        var address: String?
    }

    private static let keptLines = 50
    private let state = Mutex(State())

    var listeners: ChildProcess.Listeners? {
        state.withLock { state in
            guard let data = state.data, let admin = state.admin else { return nil }
            return ChildProcess.Listeners(data: data, admin: admin)
        }
    }

    var ended: Bool { state.withLock { $0.ended } }

    func tail() -> [String] { state.withLock { $0.lines } }

    /// Reads `descriptor` until end of file (the child exited) on a thread of its own, then closes it.
    func startDraining(_ descriptor: Int32, threadName: String) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                append(buffer[..<count])
            }
            close(descriptor)
            state.withLock { $0.ended = true }
        }
        thread.name = threadName
        thread.start()
    }

    private func append(_ bytes: ArraySlice<UInt8>) {
        state.withLock { state in
            state.partial.append(contentsOf: bytes)
            while let newline = state.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: state.partial[..<newline], as: UTF8.self)
                state.partial.removeSubrange(...newline)
                Self.record(line, in: &state)
            }
            // A child that never ends a line must not grow this without bound.
            if state.partial.count > 1 << 16 { state.partial.removeAll() }
        }
    }

    private static func record(_ line: String, in state: inout State) {
        state.lines.append(line)
        if state.lines.count > keptLines { state.lines.removeFirst(state.lines.count - keptLines) }
        guard let parsed = try? JSONDecoder().decode(LogLine.self, from: Data(line.utf8)),
            parsed.message == "listening",
            let port = parsed.address?.split(separator: ":").last.flatMap({ Int($0) })
        else { return }
        switch parsed.listener {
        case "data": state.data = port
        case "admin": state.admin = port
        default: break
        }
    }
}
