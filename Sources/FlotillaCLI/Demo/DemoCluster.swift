import FlotillaTopology

/// The demo's processes, `flotilla cache` shards and a `flotilla cache-proxy`, started from the
/// running executable on loopback ports by a `Supervisor`, which stops all of them on the way
/// out (the proxy first, then the shards together), however the demo ends.
final class DemoCluster: Sendable {
    /// A started child and the ports it listens on.
    struct Member: Sendable {
        var child: Supervisor.Child
        var process: SupervisedProcess { child.process }
        var dataPort: Int { child.port("data") }
        var address: String { "127.0.0.1:\(dataPort)" }
    }

    /// Stop orders: the proxy goes before the shards behind it.
    private enum StopOrder {
        static let shard = 0
        static let proxy = 1
    }

    private let supervisor: Supervisor

    init() {
        supervisor = Supervisor()
    }

    /// Flags every child takes: loopback, JSON logs, a short drain (the ports come from the ready file).
    private static let commonArguments = ["--admin", "127.0.0.1:0", "--log-format", "json", "--drain-timeout", "2s"]

    /// A `flotilla cache` shard on `port` (0: any free port). Binding a given port again right
    /// after its previous owner died can fail while the port is briefly taken by someone else's
    /// outgoing connection, hence the attempts.
    func startShard(name: String, port: Int = 0, attempts: Int = 1) async throws -> Member {
        let arguments =
            ["cache", "--listen", "127.0.0.1:\(port)", "--threads", "1", "--memory", "64MiB"] + Self.commonArguments
        let child = try await supervisor.start(
            name: name,
            arguments: arguments,
            stopOrder: StopOrder.shard,
            attempts: attempts
        )
        return Member(child: child)
    }

    /// A `flotilla cache-proxy` over `shards`, each key on `replicas` of them.
    func startProxy(shards: [String], replicas: Int, threads: Int) async throws -> Member {
        let arguments =
            [
                "cache-proxy", "--listen", "127.0.0.1:0", "--shards", shards.joined(separator: ","),
                "--replicas", "\(replicas)", "--threads", "\(threads)",
            ] + Self.commonArguments
        return Member(
            child: try await supervisor.start(name: "proxy", arguments: arguments, stopOrder: StopOrder.proxy)
        )
    }

    /// Stops every child still running; returns how each ended, in start order.
    @discardableResult
    func stopAll() async -> [(name: String, ending: String)] {
        await supervisor.stopAll()
    }

    /// Children not yet reaped.
    var running: [SupervisedProcess] { supervisor.running }
}
