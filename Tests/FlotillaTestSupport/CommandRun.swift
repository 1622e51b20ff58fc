import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One finished run of a command: its exit status and everything it wrote.
public struct CommandRun: Sendable, CustomStringConvertible {
    /// Failures to start a command.
    public struct RunError: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    var arguments: [String]
    /// The exit status, or 128 + the signal number when a signal ended it.
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// True when the hard timeout passed and the command was killed.
    public var timedOut: Bool
    var elapsed: Duration

    /// For failure messages: the command, how it ended, and what it said.
    public var description: String {
        let ending = timedOut ? "killed after timeout" : "exit \(status)"
        return "`\(arguments.joined(separator: " "))` (\(ending), \(elapsed)):\nstdout: \(stdout)\nstderr: \(stderr)"
    }

    /// Runs `flotilla ARGUMENTS` (the binary `PeerProcess.flotillaPath()` finds) to completion.
    public static func flotilla(_ arguments: [String], timeout: Duration = .seconds(30)) throws -> CommandRun {
        let path = PeerProcess.flotillaPath()
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw RunError(description: "flotilla binary not found at \(path); run `swift build` or set FLOTILLA_BIN")
        }
        return try run(path, arguments, timeout: timeout)
    }

    /// Runs a command to completion with stdin empty, capturing stdout and stderr; after `timeout` it is killed
    /// (SIGKILL), so a hung command fails its test instead of hanging the suite.
    ///
    /// Output goes to temporary files rather than pipes: nothing has to drain them while the command runs.
    static func run(_ path: String, _ arguments: [String], timeout: Duration) throws -> CommandRun {
        let directory = FileManager.default.temporaryDirectory
        let token = UUID().uuidString
        let outURL = directory.appendingPathComponent("flotilla-run-\(token).out")
        let errURL = directory.appendingPathComponent("flotilla-run-\(token).err")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        guard FileManager.default.createFile(atPath: outURL.path, contents: nil),
            FileManager.default.createFile(atPath: errURL.path, contents: nil)
        else { throw RunError(description: "cannot create output files in \(directory.path)") }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outHandle
        process.standardError = errHandle
        let clock = ContinuousClock()
        let start = clock.now
        try process.run()

        let deadline = start.advanced(by: timeout)
        var timedOut = false
        while process.isRunning {
            if clock.now >= deadline {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        let elapsed = clock.now - start
        let status =
            process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return CommandRun(
            arguments: [(path as NSString).lastPathComponent] + arguments,
            status: status,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
            timedOut: timedOut,
            elapsed: elapsed
        )
    }
}
