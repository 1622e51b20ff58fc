import FlotillaTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `flotilla demo` end to end: the real binary starts its shards and proxy, kills one, brings it back, prints the
/// story and the closing table, and leaves no process behind.
@Suite("flotilla demo", .enabled(if: FileManager.default.fileExists(atPath: "/proc/self/environ")))
struct DemoTests {
    @Test("a short demo shows the shard go down and come back, with hints replayed, and leaves no process")
    func shortDemo() async throws {
        let run = try DemoRun.start(["demo", "--duration-scale", "0.3"])
        let result = await run.waitForExit(timeout: .seconds(150))
        defer { DemoRun.killMarked(token: run.token) }

        try #require(!result.timedOut && result.status == 0, "\(result)")
        let out = result.stdout
        #expect(out.contains("What happened"), "\(result)")
        for row in ["1 steady", "2 shard down", "3 recovery"] {
            #expect(out.contains("\n\(row) "), "table row '\(row)' missing: \(result)")
        }
        for heading in ["throughput", "p50", "p99", "errors", "hit rate", "Share of the shards' requests"] {
            #expect(out.contains(heading), "'\(heading)' missing: \(result)")
        }
        #expect(out.contains("the proxy marked shard") && out.contains("down after"), "\(result)")
        #expect(out.contains("up after"), "\(result)")
        let replayed = try #require(Self.hintsReplayed(in: out), "no hinted-writes line: \(result)")
        #expect(replayed > 0, "\(result)")

        // Four shards, the proxy and the restarted shard were seen running as children of the demo.
        #expect(result.children.count >= 6, "children seen: \(result.children.sorted()): \(result)")
        // None of them, nor anything else started with the run's marker, outlives the demo.
        let survivors = DemoRun.markedProcesses(token: run.token)
        #expect(survivors.isEmpty, "left behind: \(survivors): \(result)")
    }

    @Test("a demo killed with SIGKILL takes its shards and proxy with it (parent-death signal)")
    func killedDemoLeavesNothing() async throws {
        let run = try DemoRun.start(["demo", "--duration-scale", "0.3"])
        defer { DemoRun.killMarked(token: run.token) }
        let pid = run.process.processIdentifier
        // Wait until the four shards and the proxy run, then kill the demo outright.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while DemoRun.children(of: pid).count < 5, clock.now < deadline, run.process.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        let children = DemoRun.children(of: pid)
        try #require(children.count >= 5, "the demo did not start its children: \(children)")
        kill(pid, SIGKILL)
        let result = await run.waitForExit(timeout: .seconds(10))
        #expect(result.status == 128 + SIGKILL, "\(result)")
        var survivors = DemoRun.markedProcesses(token: run.token)
        let gone = clock.now.advanced(by: .seconds(5))
        while !survivors.isEmpty, clock.now < gone {
            try await Task.sleep(for: .milliseconds(20))
            survivors = DemoRun.markedProcesses(token: run.token)
        }
        #expect(survivors.isEmpty, "left behind after SIGKILL of the demo: \(survivors)")
    }

    @Test("a bad --duration-scale is a usage error")
    func usage() throws {
        let run = try CommandRun.flotilla(["demo", "--duration-scale", "0"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderr.contains("--duration-scale"), "\(run)")
    }

    /// The number in "…; N hints replayed to it" of the closing table.
    static func hintsReplayed(in output: String) -> Int? {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("hinted handoff:") }),
            let range = line.range(of: " hints replayed")
        else { return nil }
        let number = line[..<range.lowerBound].split(separator: " ").last ?? ""
        return Int(number.replacingOccurrences(of: ",", with: ""))
    }
}

/// A `flotilla demo` run whose processes can be told apart from everyone else's: the demo gets a unique marker in
/// its environment, which its children inherit, so `/proc/PID/environ` names them even once the demo has gone.
struct DemoRun {
    struct Result: CustomStringConvertible {
        var pid: pid_t
        var status: Int32
        var timedOut: Bool
        var stdout: String
        var stderr: String
        /// Every child process of the demo seen while it ran.
        var children: Set<pid_t>

        var description: String {
            "flotilla demo (pid \(pid), \(timedOut ? "killed after timeout" : "exit \(status)")):\n"
                + "stdout: \(stdout)\nstderr: \(stderr)"
        }
    }

    static let markerName = "FLOTILLA_DEMO_TEST_MARKER"

    let token: String
    let process: Process
    let outURL: URL
    let errURL: URL

    static func start(_ arguments: [String]) throws -> DemoRun {
        let path = PeerProcess.flotillaPath()
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw CommandRun.RunError(description: "flotilla binary not found at \(path); run `swift build`")
        }
        let token = UUID().uuidString
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("flotilla-demo-\(token).out")
        let errURL = directory.appendingPathComponent("flotilla-demo-\(token).err")
        guard FileManager.default.createFile(atPath: outURL.path, contents: nil),
            FileManager.default.createFile(atPath: errURL.path, contents: nil)
        else { throw CommandRun.RunError(description: "cannot create output files in \(directory.path)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment[markerName] = token
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        return DemoRun(token: token, process: process, outURL: outURL, errURL: errURL)
    }

    /// Waits for the demo to exit (SIGKILL after `timeout`), watching `/proc` for its children meanwhile. Sleeps
    /// with `Task.sleep`: a blocked thread of the shared pool would stall the other suites' timers.
    func waitForExit(timeout: Duration) async -> Result {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        let pid = process.processIdentifier
        var children: Set<pid_t> = []
        var timedOut = false
        while process.isRunning {
            children.formUnion(Self.children(of: pid))
            if clock.now >= deadline {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        process.waitUntilExit()
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        return Result(
            pid: pid,
            status: process.terminationReason == .uncaughtSignal
                ? 128 + process.terminationStatus : process.terminationStatus,
            timedOut: timedOut,
            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "",
            children: children
        )
    }

    /// Live processes (not zombies) whose environment holds the marker `token`.
    static func markedProcesses(token: String) -> [pid_t] {
        let needle = Array("\(markerName)=\(token)".utf8)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ"),
                environment.split(separator: 0).contains(where: { Array($0) == needle }),
                state(of: pid) != "Z"
            else { return nil }
            return pid
        }
    }

    /// Cleans up after a failed test: SIGKILL to whatever still carries the marker.
    static func killMarked(token: String) {
        for pid in markedProcesses(token: token) { kill(pid, SIGKILL) }
    }

    /// The processes whose parent is `parent` now, from `/proc/PID/stat` (its fourth field).
    static func children(of parent: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                // The command name in parentheses may hold spaces: the fields after it are plain.
                let close = stat.lastIndex(of: ")")
            else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
        }
    }

    private static func state(of pid: pid_t) -> String? {
        statusField("State", of: pid).map { String($0.prefix(1)) }
    }

    private static func statusField(_ name: String, of pid: pid_t) -> String? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            return line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
