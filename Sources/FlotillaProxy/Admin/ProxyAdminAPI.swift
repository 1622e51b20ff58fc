import FlotillaCore
import FlotillaProxyAPI
import FlotillaServer
import Hummingbird
import OpenAPIHummingbird
import OpenAPIRuntime

extension ProxyServer {
    /// Mounts `/v1/shards` and `/v1/route` on the admin listener.
    public func registerAdminRoutes(on router: Router<BasicRequestContext>) throws {
        try ProxyAdminAPI(proxy: self, shardRates: shardRates).registerHandlers(on: router)
    }
}

/// The cache proxy's own admin endpoints, `/v1/shards` and `/v1/route`, implementing the protocol
/// generated from `Sources/FlotillaProxyAPI/openapi.yaml`.
struct ProxyAdminAPI: APIProtocol {
    let proxy: ProxyServer
    /// Shard request rates, from the totals the proxy samples once a second.
    let shardRates: RateWindow

    func getShards(_ input: Operations.GetShards.Input) async throws -> Operations.GetShards.Output {
        let states = await proxy.shardStates()
        let rates = shardRates.rates(current: states.map(\.traffic.count))
        let list = zip(states, rates).map { state, rate in
            Components.Schemas.ShardState(
                address: state.address,
                state: state.recovering ? .recovering : state.up ? .up : .down,
                requests: Int64(clamping: state.traffic.count),
                errors: Int64(clamping: state.traffic.errors),
                ratePerSecond: rate,
                latencyMicroseconds: .init(
                    p50: state.traffic.latencyMicroseconds(50),
                    p95: state.traffic.latencyMicroseconds(95),
                    p99: state.traffic.latencyMicroseconds(99),
                    p999: state.traffic.latencyMicroseconds(99.9),
                    max: state.traffic.latencyMicroseconds(100)
                ),
                outstanding: Int64(state.outstanding),
                pendingHints: Int64(state.pendingHints),
                hintsReplayed: Int64(clamping: state.hintsReplayed),
                timesMarkedDown: Int64(clamping: state.timesMarkedDown),
                rebuild: .init(
                    restarts: Int64(clamping: state.rebuild.restarts),
                    running: state.rebuild.running,
                    needed: state.rebuild.needed,
                    keysScanned: Int64(clamping: state.rebuild.scanned),
                    keysCopied: Int64(clamping: state.rebuild.copied),
                    completed: Int64(clamping: state.rebuild.completed),
                    failures: Int64(clamping: state.rebuild.failures),
                    lastSeconds: state.rebuild.lastDuration?.inSeconds,
                    lastError: state.rebuild.lastError
                )
            )
        }
        return .ok(.init(body: .json(.init(shards: list))))
    }

    func getRoute(_ input: Operations.GetRoute.Input) async throws -> Operations.GetRoute.Output {
        guard let key = input.query.key else {
            return .badRequest(.init(body: .json(.init(error: "give the key: /v1/route?key=K"))))
        }
        guard (1...250).contains(key.utf8.count) else {
            return .badRequest(.init(body: .json(.init(error: "key must be 1 to 250 bytes, got \(key.utf8.count)"))))
        }
        return .ok(.init(body: .json(.init(key: key, shards: proxy.route(key: key)))))
    }
}

/// One shard as the admin listener reports it.
struct ShardAdminState: Sendable {
    var address: String
    var up: Bool
    /// Back from down or restarted: takes writes, serves no reads until repaired or rebuilt.
    var recovering: Bool
    /// Requests sent to the shard, their failures and latency (all event loops).
    var traffic: OperationSnapshot
    var outstanding: Int
    var pendingHints: Int
    var hintsReplayed: UInt64
    var timesMarkedDown: UInt64
    var rebuild: ShardRebuilds.Record
}
