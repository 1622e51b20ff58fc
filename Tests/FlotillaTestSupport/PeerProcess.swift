import FlotillaServer
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real server process started for a test: Debian's memcached or the `flotilla` binary itself.
///
/// Processes are only ever handed out inside a scope (`withMemcached`, `withFlotilla`) whose exit stops and reaps
/// them, whether the body returns or throws, so a failing test never leaks a server. The child's stderr is drained
/// on a background thread for the whole life of the process: a child that logs more than a pipe buffer would
/// otherwise block forever on its next log line.
public final class PeerProcess {
    /// The two listeners of a running `flotilla cache`.
    public struct FlotillaAddresses: Sendable {
        public var dataPort: UInt16
        var adminPort: UInt16
    }

    /// Failures to find, start or reach a peer.
    public struct PeerError: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    let name: String
    private let process: Process
    let stderrLog: StderrLog
    /// The ready file the peer was told to write (`launchFlotilla`), removed by `stop()`.
    private let readyFile: ReadyFile?

    private init(name: String, process: Process, stderrLog: StderrLog, readyFile: ReadyFile?) {
        self.name = name
        self.process = process
        self.stderrLog = stderrLog
        self.readyFile = readyFile
    }

    // MARK: Locating binaries

    /// True when running under CI (`CI=true`), where a missing memcached is a failure rather than a skip.
    static var isCI: Bool {
        ProcessInfo.processInfo.environment["CI"]?.lowercased() == "true"
    }

    /// The memcached executable: `$MEMCACHED_BIN`, else the usual package locations; nil when not installed.
    public static var memcachedPath: String? {
        let environment = ProcessInfo.processInfo.environment
        let candidates =
            [environment["MEMCACHED_BIN"]].compactMap { $0 } + [
                "/usr/bin/memcached", "/usr/local/bin/memcached", "/opt/homebrew/bin/memcached",
            ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Why memcached-based tests cannot run here, phrased for the person reading the test log.
    public static let memcachedMissingMessage =
        "memcached is not installed; install it (e.g. `apt-get install memcached`) or set MEMCACHED_BIN"

    /// Whether memcached-based tests should run: always under CI (so that a missing binary fails loudly),
    /// otherwise only when memcached is installed.
    public static var memcachedTestsEnabled: Bool {
        memcachedPath != nil || isCI
    }

    /// The `flotilla` executable: `$FLOTILLA_BIN`, else `.build/debug/flotilla` under the package root (or
    /// `.build/release/flotilla` when only a release build exists).
    public static func flotillaPath() -> String {
        // `#filePath` here, not as a default argument: a default would be the caller's file, at another depth.
        flotillaPath(filePath: #filePath)
    }

    static func flotillaPath(filePath: String) -> String {
        if let path = ProcessInfo.processInfo.environment["FLOTILLA_BIN"], !path.isEmpty {
            return path
        }
        // This file lives at <root>/Tests/FlotillaTestSupport/PeerProcess.swift.
        var root = URL(fileURLWithPath: filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        let debug = root.appendingPathComponent(".build/debug/flotilla").path
        let release = root.appendingPathComponent(".build/release/flotilla").path
        let files = FileManager.default
        return !files.isExecutableFile(atPath: debug) && files.isExecutableFile(atPath: release) ? release : debug
    }

    // MARK: Scoped lifetimes

    /// Runs `body` with the port of a fresh memcached (`-U 0 -t 2 -m MB -l 127.0.0.1`), stopping it afterwards.
    ///
    /// memcached cannot listen on port 0 and report the port, so a free port is found by binding one briefly;
    /// another process may grab it in between, hence the retries.
    public static func withMemcached<Result>(
        memoryMegabytes: Int = 64,
        _ body: (UInt16) throws -> Result
    ) throws -> Result {
        guard let path = memcachedPath else { throw PeerError(description: memcachedMissingMessage) }
        var failures: [String] = []
        for _ in 0..<5 {
            let port = try reserveLoopbackPort()
            var arguments = [
                "-U", "0", "-t", "2", "-m", String(memoryMegabytes), "-l", "127.0.0.1", "-p", String(port),
            ]
            // memcached refuses to start as root unless told which user to run as.
            if geteuid() == 0 { arguments += ["-u", "root"] }
            let peer = try launch(name: "memcached", path: path, arguments: arguments)
            defer { peer.stop() }
            if peer.waitUntilAccepting(port: port, timeout: .seconds(5)) {
                return try body(port)
            }
            failures.append("port \(port): \(peer.stderrTail())")
        }
        throw PeerError(description: "memcached did not start: \(failures.joined(separator: "; "))")
    }

    /// Runs `body` with the listeners of a fresh `flotilla cache`, stopping it afterwards.
    public static func withFlotilla<Result>(
        extraArguments: [String] = [],
        _ body: (FlotillaAddresses) throws -> Result
    ) throws -> Result {
        let (peer, addresses) = try launchFlotilla(name: "flotilla", arguments: ["cache"] + extraArguments)
        defer { peer.stop() }
        return try body(addresses)
    }

    /// Starts a `flotilla` role on loopback port 0 (data and admin) and waits for its ready file, where it
    /// writes the ports it was given once both listeners are bound.
    static func launchFlotilla(name: String, arguments: [String]) throws -> (PeerProcess, FlotillaAddresses) {
        let path = flotillaPath()
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw PeerError(description: "flotilla binary not found at \(path); run `swift build` or set FLOTILLA_BIN")
        }
        let readyFile = ReadyFile(
            path: FileManager.default.temporaryDirectory
                .appendingPathComponent("flotilla-ready-\(getpid())-\(UUID().uuidString).json").path
        )
        let common = [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-format", "json", "--ready-file", readyFile.path,
        ]
        let peer = try launch(name: name, path: path, arguments: arguments + common, readyFile: readyFile)
        guard let addresses = peer.waitForReadyFile(readyFile, timeout: .seconds(20)) else {
            peer.stop()
            throw PeerError(
                description: "\(name) did not write its ready file within 20 s; stderr: \(peer.stderrTail())"
            )
        }
        return (peer, addresses)
    }

    /// The data and admin ports in `readyFile`, once it is written; nil when the process exits first or the
    /// timeout passes.
    private func waitForReadyFile(_ readyFile: ReadyFile, timeout: Duration) -> FlotillaAddresses? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if let contents = readyFile.read(),
                let dataPort = contents.port("data").flatMap(UInt16.init(exactly:)),
                let adminPort = contents.port("admin").flatMap(UInt16.init(exactly:))
            {
                return FlotillaAddresses(dataPort: dataPort, adminPort: adminPort)
            }
            if !process.isRunning { return nil }
            usleep(10_000)
        }
        return nil
    }

    // MARK: Process control

    static func launch(
        name: String,
        path: String,
        arguments: [String],
        readyFile: ReadyFile? = nil
    ) throws -> PeerProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.runStoppable()
        let log = StderrLog()
        log.startDraining(errorPipe.fileHandleForReading)
        return PeerProcess(name: name, process: process, stderrLog: log, readyFile: readyFile)
    }

    /// True once a TCP connection to the port succeeds; false if the process exits or the timeout passes.
    private func waitUntilAccepting(port: UInt16, timeout: Duration) -> Bool {
        process.waitUntilAccepting(port: port, timeout: timeout)
    }

    /// SIGTERM, a bounded wait, then SIGKILL; always reaps the child and removes its ready file (which a
    /// killed role leaves behind).
    func stop() {
        let pid = process.processIdentifier
        if process.isRunning {
            kill(pid, SIGTERM)
            waitForExit(timeout: .seconds(10))
        }
        if process.isRunning {
            kill(pid, SIGKILL)
            waitForExit(timeout: .seconds(5))
        }
        // Reaps the child; after SIGKILL this cannot block for long.
        process.waitUntilExit()
        readyFile?.remove()
    }

    private func waitForExit(timeout: Duration) {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while process.isRunning && clock.now < deadline {
            usleep(10_000)
        }
    }

    /// The last lines the child wrote to stderr, for failure messages.
    func stderrTail() -> String {
        stderrLog.tail().joined(separator: "\n")
    }

    /// Finds a currently free loopback port by binding port 0 and reading back the kernel's choice.
    static func reserveLoopbackPort() throws -> UInt16 {
        guard let fd = LoopbackSocket.open() else { throw PeerError(description: "socket() failed: errno \(errno)") }
        defer { _ = close(fd) }
        var address = LoopbackSocket.address(port: 0)
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw PeerError(description: "bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(fd, $0, &length)
            }
        }
        guard named == 0 else { throw PeerError(description: "getsockname() failed: errno \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }
}

/// Collects a child's stderr line by line on a background thread, for failure messages.
final class StderrLog: @unchecked Sendable {
    // Guards every stored property below; the drain thread writes while test threads read.
    private let condition = NSCondition()
    private var lines: [String] = []
    private var partial: [UInt8] = []
    private var finished = false
    private static let keptLines = 200

    func startDraining(_ handle: FileHandle) {
        let thread = Thread { [self] in
            // availableData returns empty data only at end of file, i.e. once the child has exited.
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                append(chunk)
            }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "PeerProcess.stderr"
        thread.start()
    }

    private func append(_ chunk: Data) {
        condition.lock()
        defer { condition.unlock() }
        partial.append(contentsOf: chunk)
        while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: partial[..<newline], as: UTF8.self)
            partial.removeSubrange(...newline)
            record(line)
        }
        // A child that never ends a line must not grow this buffer without bound.
        if partial.count > 1 << 20 { partial.removeAll() }
    }

    private func record(_ line: String) {
        lines.append(line)
        if lines.count > Self.keptLines { lines.removeFirst(lines.count - Self.keptLines) }
        condition.broadcast()
    }

    func tail() -> [String] {
        condition.lock()
        defer { condition.unlock() }
        return lines
    }
}
