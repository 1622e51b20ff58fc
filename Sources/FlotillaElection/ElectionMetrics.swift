import CoreMetrics
import FlotillaServer

/// The election's gauges, declared once (STYLE.md rule 9); refreshed from the elector's status.
struct ElectionMetrics: Sendable {
    /// 1 while this candidate leads (its term proven), else 0.
    let leader: Gauge
    /// The fencing token of this candidate's current term, 0 when it does not lead.
    let token: Gauge
    /// 1 while the coordinator answers, else 0 (what `/readyz` follows).
    let reachable: Gauge

    init(factory: any MetricsFactory) {
        leader = Gauge(
            "flotilla_election_leader",
            help: "1 while this candidate leads (its term proven), else 0.",
            factory: factory
        )
        token = Gauge(
            "flotilla_election_token",
            help: "Fencing token of this candidate's current term; 0 when it does not lead.",
            factory: factory
        )
        reachable = Gauge(
            "flotilla_election_coordinator_reachable",
            help: "1 while the coordinator answers, else 0.",
            factory: factory
        )
    }

    func update(with status: Elector.Status) {
        leader.record(status.term == nil ? 0 : 1)
        token.record(Double(status.term?.token ?? 0))
        reachable.record(status.coordinatorReachable ? 1 : 0)
    }
}
