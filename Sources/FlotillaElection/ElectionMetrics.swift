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
        MetricHelp.describe([
            "flotilla_election_leader": "1 while this candidate leads (its term proven), else 0.",
            "flotilla_election_token": "Fencing token of this candidate's current term; 0 when it does not lead.",
            "flotilla_election_coordinator_reachable": "1 while the coordinator answers, else 0.",
        ])
        leader = Gauge(label: "flotilla_election_leader", factory: factory)
        token = Gauge(label: "flotilla_election_token", factory: factory)
        reachable = Gauge(label: "flotilla_election_coordinator_reachable", factory: factory)
    }

    func update(with status: Elector.Status) {
        leader.record(status.term == nil ? 0 : 1)
        token.record(Double(status.term?.token ?? 0))
        reachable.record(status.coordinatorReachable ? 1 : 0)
    }
}
