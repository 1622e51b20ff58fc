import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real nutcracker (twemproxy) started for a test, from Debian's `nutcracker` package.
///
/// Like `PeerProcess`, a nutcracker is only handed out inside a scope (`withNutcracker`) whose exit stops and reaps
/// it, whether the body returns or throws. Each one gets its own configuration, log and pid files in a fresh
/// temporary directory, its own loopback ports, and its stats listener on loopback too.
public enum Nutcracker {
    /// One pool's settings, written as nutcracker's YAML configuration.
    public struct Pool {
        /// `HOST:PORT:WEIGHT` lines, in order.
        var servers: [String]
        /// twemproxy's `hash:` name (`fnv1a_64`, `md5`, …).
        var hash: String
        var distribution: String

        public init(servers: [String], hash: String, distribution: String = "ketama") {
            self.servers = servers
            self.hash = hash
            self.distribution = distribution
        }
    }

    /// The nutcracker executable: `$NUTCRACKER_BIN`, else the usual package locations; nil when not installed.
    public static var path: String? {
        let environment = ProcessInfo.processInfo.environment
        let candidates =
            [environment["NUTCRACKER_BIN"]].compactMap { $0 } + [
                "/usr/sbin/nutcracker", "/usr/bin/nutcracker", "/usr/local/sbin/nutcracker",
                "/usr/local/bin/nutcracker", "/opt/homebrew/bin/nutcracker",
            ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Why nutcracker-based tests cannot run here, phrased for the person reading the test log.
    public static let missingMessage =
        "nutcracker or memcached is not installed; install them (e.g. `apt-get install nutcracker memcached`) "
        + "or set NUTCRACKER_BIN and MEMCACHED_BIN"

    /// Whether nutcracker-based tests should run: always under CI (so that a missing binary fails loudly), otherwise
    /// only when both nutcracker and memcached are installed.
    public static var testsEnabled: Bool {
        (path != nil && PeerProcess.memcachedPath != nil) || PeerProcess.isCI
    }

    /// Runs `body` with the listen port of a fresh nutcracker serving `pool`, stopping it afterwards.
    public static func withNutcracker<Result>(_ pool: Pool, _ body: (UInt16) throws -> Result) throws -> Result {
        guard let path else { throw PeerProcess.PeerError(description: missingMessage) }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("flotilla-nutcracker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = directory.appendingPathComponent("nutcracker.yml").path
        let log = directory.appendingPathComponent("nutcracker.log").path
        var failures: [String] = []
        // A reserved port may be taken by someone else before nutcracker binds it, hence the retries.
        for _ in 0..<5 {
            let port = try PeerProcess.reserveLoopbackPort()
            let statsPort = try PeerProcess.reserveLoopbackPort()
            try yaml(pool, port: port).write(toFile: configuration, atomically: true, encoding: .utf8)
            let arguments = [
                "-c", configuration, "-s", String(statsPort), "-a", "127.0.0.1",
                "-p", directory.appendingPathComponent("nutcracker.pid").path, "-o", log,
            ]
            let child = try ScopedChild(path: path, arguments: arguments)
            defer { child.stop() }
            if child.waitUntilAccepting(port: port, timeout: .seconds(5)) {
                return try body(port)
            }
            let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            failures.append("port \(port): \(logText.split(separator: "\n").suffix(5).joined(separator: " | "))")
        }
        throw PeerProcess.PeerError(description: "nutcracker did not start: \(failures.joined(separator: "; "))")
    }

    /// Runs `body` with a memcached listening on `127.0.0.1:port`, for the one test that needs a fixed port
    /// (nutcracker hashes a server on 11211 by its host alone). Throws if memcached does not come up there.
    public static func withMemcached<Result>(port: UInt16, _ body: () throws -> Result) throws -> Result {
        guard let path = PeerProcess.memcachedPath else {
            throw PeerProcess.PeerError(description: PeerProcess.memcachedMissingMessage)
        }
        var arguments = ["-U", "0", "-t", "2", "-m", "16", "-l", "127.0.0.1", "-p", String(port)]
        if geteuid() == 0 { arguments += ["-u", "root"] }
        let child = try ScopedChild(path: path, arguments: arguments)
        defer { child.stop() }
        guard child.waitUntilAccepting(port: port, timeout: .seconds(5)) else {
            throw PeerProcess.PeerError(description: "memcached did not start on port \(port)")
        }
        return try body()
    }

    /// Whether nothing listens on `127.0.0.1:port` right now (a bind succeeds).
    public static func loopbackPortIsFree(_ port: UInt16) -> Bool {
        guard let fd = LoopbackSocket.open() else { return false }
        defer { _ = close(fd) }
        var address = LoopbackSocket.address(port: port)
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return bound == 0
    }

    private static func yaml(_ pool: Pool, port: UInt16) -> String {
        var lines = [
            "flotilla:",
            "  listen: 127.0.0.1:\(port)",
            "  hash: \(pool.hash)",
            "  distribution: \(pool.distribution)",
            "  auto_eject_hosts: false",
            "  timeout: 5000",
            "  servers:",
        ]
        lines += pool.servers.map { "   - \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// A child process with no stdin or stdout, its stderr discarded (nutcracker logs to its `-o` file); stopped with
/// SIGTERM, then SIGKILL, and always reaped.
private final class ScopedChild {
    private let process = Process()

    init(path: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.runStoppable()
    }

    /// True once a TCP connection to the port succeeds; false if the process exits or the timeout passes.
    func waitUntilAccepting(port: UInt16, timeout: Duration) -> Bool {
        process.waitUntilAccepting(port: port, timeout: timeout)
    }

    func stop() {
        let pid = process.processIdentifier
        for (signal, timeout) in [(SIGTERM, Duration.seconds(10)), (SIGKILL, .seconds(5))] where process.isRunning {
            kill(pid, signal)
            let clock = ContinuousClock()
            let deadline = clock.now.advanced(by: timeout)
            while process.isRunning && clock.now < deadline { usleep(10_000) }
        }
        process.waitUntilExit()
    }
}
