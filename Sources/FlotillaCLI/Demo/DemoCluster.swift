import FlotillaProcess
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts the demo's processes, `flotilla cache` shards and a `flotilla cache-proxy`, from the
/// running executable on loopback ports, and remembers every child it ever started so that all
/// of them are stopped on the way out, however the demo ends.
final class DemoCluster: Sendable {
    /// A started child and the ports it listens on.
    struct Member: Sendable {
        var process: DemoChild
        var listeners: DemoChild.Listeners
        var address: String { "127.0.0.1:\(listeners.data)" }
    }

    /// How long a child may take to report its listeners (a debug build on a busy machine is slow).
    static let startTimeout: Duration = .seconds(30)
    /// How long a child may drain after SIGTERM before SIGKILL.
    static let stopGrace: Duration = .seconds(5)

    private let children = Mutex<[DemoChild]>([])

    /// Flags every child takes: loopback, JSON logs, a short drain (the ports come from the ready file).
    private static let commonArguments = ["--admin", "127.0.0.1:0", "--log-format", "json", "--drain-timeout", "2s"]

    /// A `flotilla cache` shard on `port` (0: any free port). Binding a given port again right
    /// after its previous owner died can fail while the port is briefly taken by someone else's
    /// outgoing connection, hence the attempts.
    func startShard(name: String, port: Int = 0, attempts: Int = 1) async throws -> Member {
        let arguments =
            ["cache", "--listen", "127.0.0.1:\(port)", "--threads", "1", "--memory", "64MiB"] + Self.commonArguments
        var lastError: any Error = ChildProcess.LaunchError(description: "\(name) was not started")
        for attempt in 1...max(attempts, 1) {
            do {
                return try await start(name: name, arguments: arguments)
            } catch let error as ChildProcess.LaunchError {
                lastError = error
                if attempt < attempts { try await Task.sleep(for: .milliseconds(200)) }
            }
        }
        throw lastError
    }

    /// A `flotilla cache-proxy` over `shards`, each key on `replicas` of them.
    func startProxy(shards: [String], replicas: Int, threads: Int) async throws -> Member {
        let arguments =
            [
                "cache-proxy", "--listen", "127.0.0.1:0", "--shards", shards.joined(separator: ","),
                "--replicas", "\(replicas)", "--threads", "\(threads)",
            ] + Self.commonArguments
        return try await start(name: "proxy", arguments: arguments)
    }

    private func start(name: String, arguments: [String]) async throws -> Member {
        let process = try await DemoChild.spawn(name: name, arguments: arguments)
        // Registered before waiting, so that a demo interrupted now still stops it.
        children.withLock { $0.append(process) }
        do {
            let listeners = try await process.waitForListeners(timeout: Self.startTimeout)
            return Member(process: process, listeners: listeners)
        } catch {
            await process.stop(grace: .seconds(1))
            throw error
        }
    }

    /// Stops every child still running: the proxy first (so that it does not see its shards go
    /// as failures), then the shards together; SIGTERM, then SIGKILL after the grace period.
    /// Returns how each ended, in start order.
    @discardableResult
    func stopAll() async -> [(name: String, ending: String)] {
        let all = children.withLock { $0 }
        for proxy in all where proxy.name == "proxy" {
            await proxy.stop(grace: Self.stopGrace)
        }
        await withTaskGroup(of: Void.self) { group in
            for child in all where child.name != "proxy" {
                group.addTask { await child.stop(grace: Self.stopGrace) }
            }
        }
        return all.map { ($0.name, $0.exitDescription ?? "still running") }
    }

    /// Children not yet reaped.
    var running: [DemoChild] {
        children.withLock { $0 }.filter { !$0.hasExited() }
    }
}
