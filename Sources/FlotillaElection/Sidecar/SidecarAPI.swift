import FlotillaElectionAPI
import Foundation
import OpenAPIRuntime

/// The sidecar's handlers, implementing the protocol generated from `openapi.yaml`: who leads,
/// and whether this node does. A node that leads answers from its own proven term; any other
/// asks the coordinator at each request.
struct SidecarAPI: APIProtocol {
    let election: String
    let elector: Elector

    func getLeader(_ input: Operations.GetLeader.Input) async throws -> Operations.GetLeader.Output {
        if let leader = ownLeader() { return .ok(.init(body: .json(leader))) }
        let status = await elector.refreshObservedLeader()
        guard status.coordinatorReachable else {
            return .serviceUnavailable(
                .init(
                    body: .applicationProblemJson(
                        problem(
                            503,
                            "Coordinator unreachable",
                            "\(elector.coordinator.description) does not answer, so the leader is not known."
                        )
                    )
                )
            )
        }
        guard let observed = status.observed else {
            return .notFound(
                .init(
                    body: .applicationProblemJson(
                        problem(404, "No leader", "No candidate leads election '\(election)' right now.")
                    )
                )
            )
        }
        return .ok(
            .init(
                body: .json(
                    .init(
                        election: election,
                        id: observed.id,
                        token: Int64(clamping: observed.token),
                        since: status.observedSince,
                        me: status.term?.token == observed.token
                    )
                )
            )
        )
    }

    func getLeaderMe(_ input: Operations.GetLeaderMe.Input) async throws -> Operations.GetLeaderMe.Output {
        if let leader = ownLeader() { return .ok(.init(body: .json(leader))) }
        return .conflict(
            .init(
                body: .applicationProblemJson(
                    problem(
                        409,
                        "Not the leader",
                        "This node (\(elector.configuration.candidate)) does not lead election '\(election)'."
                    )
                )
            )
        )
    }

    /// This node's term, while it leads.
    private func ownLeader() -> Components.Schemas.Leader? {
        let status = elector.status
        guard let term = status.term else { return nil }
        return .init(
            election: election,
            id: term.leaderID,
            token: Int64(clamping: term.token),
            since: status.since,
            me: true
        )
    }

    private func problem(_ status: Int, _ title: String, _ detail: String) -> Components.Schemas.Problem {
        .init(title: title, status: status, detail: detail)
    }
}
