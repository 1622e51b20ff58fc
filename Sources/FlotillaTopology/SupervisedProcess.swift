import FlotillaProcess
import FlotillaServer
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A role process started by the `Supervisor`.
///
/// Spawned in a process group of its own, so that Ctrl-C at the terminal reaches the supervisor
/// alone and it stops its children in order, and with a parent-death signal, so that none
/// outlives the supervisor even when it is killed. It reports its ports in its ready file
/// (`--ready-file`); its standard error is drained on a thread of its own (a child that logs more
/// than a pipe holds would otherwise stall) and kept for error messages.
public final class SupervisedProcess: Sendable {
    public let name: String
    public let process: ChildProcess
    private let log: ChildLog
    private let readyFile: ReadyFile

    public var pid: pid_t { process.pid }

    private init(name: String, process: ChildProcess, log: ChildLog, readyFile: ReadyFile) {
        self.name = name
        self.process = process
        self.log = log
        self.readyFile = readyFile
    }

    /// The running executable, to start children of the same build. `/proc/self/exe` still
    /// names it when the file was replaced by a rebuild meanwhile.
    public static var executablePath: String {
        #if os(Linux)
        "/proc/self/exe"
        #else
        CommandLine.arguments[0]
        #endif
    }

    /// A readable name for the executable, for the children's `argv[0]`.
    public static var executableName: String {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 {
            return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        #endif
        return CommandLine.arguments[0]
    }

    /// Starts `executable` (default: this process's own, for children of the same build) with
    /// `arguments` and `--ready-file` added.
    public static func spawn(
        name: String,
        arguments: [String],
        executable: String = executablePath,
        argumentZero: String = executableName
    ) async throws -> SupervisedProcess {
        let readyFile = ReadyFile(
            path: FileManager.default.temporaryDirectory
                .appendingPathComponent("flotilla-child-\(getpid())-\(UUID().uuidString).json").path
        )
        let (readEnd, writeEnd) = try ChildProcess.makePipe()
        var configuration = ChildProcess.Configuration(
            executable: executable,
            arguments: arguments + ["--ready-file", readyFile.path]
        )
        configuration.argumentZero = argumentZero
        configuration.standardOutput = .null
        configuration.standardError = .descriptor(writeEnd)
        let process: ChildProcess
        do {
            process = try await ChildProcess.spawn(configuration)
        } catch {
            close(readEnd)
            close(writeEnd)
            throw error
        }
        close(writeEnd)
        let log = ChildLog()
        log.startDraining(readEnd, threadName: "child.\(name).stderr")
        return SupervisedProcess(name: name, process: process, log: log, readyFile: readyFile)
    }

    // MARK: Readiness

    /// Waits for the ready file; throws, with the child's last words, when it exits first or the
    /// timeout passes.
    public func waitUntilReady(timeout: Duration) async throws -> ReadyFile.Contents {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let ready = readyFile.read() { return ready }
            if log.ended || process.hasExited() {
                // The last lines may still be in the pipe: give the drain a moment.
                try await Task.sleep(for: .milliseconds(50))
                throw ChildProcess.LaunchError(description: "\(name) exited before it listened: \(lastWords())")
            }
            guard ContinuousClock.now < deadline else {
                throw ChildProcess.LaunchError(
                    description: "\(name) did not report its listeners within \(timeout): \(lastWords())"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The last lines the child wrote, for error messages.
    public func lastWords() -> String {
        let lines = log.tail()
        return lines.isEmpty ? "(it wrote nothing)" : lines.suffix(5).joined(separator: " | ")
    }

    // MARK: Signals and exit

    public func send(_ signal: Int32) { process.send(signal) }

    public func hasExited() -> Bool { process.hasExited() }

    /// How the child ended, in words; nil while it runs.
    public var exitDescription: String? { process.termination?.description }

    public func waitForExit(timeout: Duration) async -> Bool {
        await process.waitForExit(timeout: timeout, interval: .milliseconds(10))
    }

    /// SIGTERM (the child drains), then SIGKILL after `grace`; the child is reaped either way.
    public func stop(grace: Duration) async {
        await process.stop(grace: grace)
        readyFile.remove()
    }

    /// SIGKILL, no drain: a crash, as far as its peers can tell.
    public func crash() async {
        await process.crash()
        readyFile.remove()
    }
}

/// A child's standard error, line by line: the last lines, for error messages.
private final class ChildLog: Sendable {
    private struct State {
        var lines: [String] = []
        var partial: [UInt8] = []
        var ended = false
    }

    private static let keptLines = 50
    private let state = Mutex(State())

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
                state.lines.append(line)
                if state.lines.count > Self.keptLines { state.lines.removeFirst(state.lines.count - Self.keptLines) }
            }
            // A child that never ends a line must not grow this without bound.
            if state.partial.count > 1 << 16 { state.partial.removeAll() }
        }
    }
}
