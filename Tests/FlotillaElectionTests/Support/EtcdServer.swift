import FlotillaCore
import FlotillaElection
import FlotillaProcess
import Foundation
import Logging
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A real etcd on loopback for one test, one member or a cluster of several: a temporary directory, free
/// client and peer ports, killed and deleted by `stop()` (and killed by the kernel if the test process
/// dies first: parent-death signal).
struct EtcdServer {
    static let executable = "/usr/bin/etcd"
    static let installHint = "etcd is not installed at \(executable): apt-get install etcd-server"

    /// Whether the tests that need etcd run: always on CI (`CI=true`), where a missing etcd then
    /// fails them; elsewhere only when etcd is installed.
    static var enabled: Bool {
        FileManager.default.isExecutableFile(atPath: executable) || ProcessInfo.processInfo.environment["CI"] == "true"
    }

    struct Member {
        var endpoint: HostPort
        var process: ChildProcess
        var logPath: String
    }

    let members: [Member]
    let directory: URL

    /// The first member's client endpoint.
    var endpoint: HostPort { members[0].endpoint }

    /// Starts etcd and waits (at most `readyTimeout`) until every member answers; retries with new
    /// ports when the ones picked were taken meanwhile.
    static func start(members: Int = 1, readyTimeout: Duration = .seconds(20)) async throws -> EtcdServer {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw SetupError(description: installHint)
        }
        var lastError: (any Error)?
        for _ in 0..<3 {
            do {
                return try await startOnce(members: members, readyTimeout: readyTimeout)
            } catch let error as SetupError {
                lastError = error
            }
        }
        throw lastError ?? SetupError(description: "etcd did not start")
    }

    private static func startOnce(members count: Int, readyTimeout: Duration) async throws -> EtcdServer {
        var ports: [Int] = []
        for _ in 0..<(2 * count * 3) where ports.count < 2 * count {
            let port = try freePort()
            if !ports.contains(port) { ports.append(port) }
        }
        guard ports.count == 2 * count else { throw SetupError(description: "no free ports") }
        let clientPorts = Array(ports.prefix(count))
        let peerURLs = ports.dropFirst(count).map { "http://127.0.0.1:\($0)" }
        let cluster = peerURLs.enumerated().map { "m\($0.offset)=\($0.element)" }.joined(separator: ",")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-etcd-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        var members: [Member] = []
        do {
            for index in 0..<count {
                let client = "http://127.0.0.1:\(clientPorts[index])"
                let logPath = directory.appendingPathComponent("m\(index).log").path
                let process = try await spawn(
                    arguments: [
                        "--name", "m\(index)", "--data-dir", directory.appendingPathComponent("m\(index)").path,
                        "--listen-client-urls", client, "--advertise-client-urls", client,
                        "--listen-peer-urls", peerURLs[index], "--initial-advertise-peer-urls", peerURLs[index],
                        "--initial-cluster", cluster,
                    ],
                    logPath: logPath
                )
                members.append(
                    Member(
                        endpoint: HostPort(host: "127.0.0.1", port: clientPorts[index]),
                        process: process,
                        logPath: logPath
                    )
                )
            }
        } catch {
            await EtcdServer(members: members, directory: directory).stop()
            throw error
        }
        let server = EtcdServer(members: members, directory: directory)
        for member in members where !(await waitUntilReady(member, timeout: readyTimeout)) {
            let tail = (try? String(contentsOfFile: member.logPath, encoding: .utf8))?.suffix(1_500) ?? ""
            await server.stop()
            throw SetupError(description: "etcd on \(member.endpoint) did not answer within \(readyTimeout):\n\(tail)")
        }
        return server
    }

    private static func spawn(arguments: [String], logPath: String) async throws -> ChildProcess {
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw SetupError(description: "cannot create \(logPath)") }
        defer { close(log) }
        var configuration = ChildProcess.Configuration(executable: executable, arguments: arguments)
        configuration.standardOutput = .descriptor(log)
        configuration.standardError = .descriptor(log)
        return try await ChildProcess.spawn(configuration)
    }

    /// Polls `leader()` through a coordinator until the member answers, exits, or `timeout` passes.
    private static func waitUntilReady(_ member: Member, timeout: Duration) async -> Bool {
        let probe = EtcdCoordinator(
            configuration: .init(endpoints: [member.endpoint], election: "ready", requestTimeout: .milliseconds(500)),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "etcd-ready", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let deadline = ContinuousClock.now + timeout
        var ready = false
        for _ in 0..<1_000 where !ready && ContinuousClock.now < deadline && !member.process.hasExited() {
            do {
                _ = try await probe.leader()
                ready = true
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        await probe.shutdown()
        return ready
    }

    /// Kills every member (resuming any a test stopped) and deletes the directory.
    func stop() async {
        for member in members {
            member.process.send(SIGCONT)
            await member.process.stop(grace: .seconds(2))
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs `body` with a fresh etcd of `members` members, stopped afterwards whatever `body` does.
    static func with<Result>(members: Int = 1, _ body: (EtcdServer) async throws -> Result) async throws -> Result {
        let server = try await start(members: members)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    /// A loopback port that was free a moment ago: bound to port 0, read back, closed.
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw SetupError(description: "socket() failed: errno \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(socket, address, length) == 0 && getsockname(socket, address, &length) == 0
            }
        }
        guard bound else { throw SetupError(description: "cannot bind a loopback port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }
}
