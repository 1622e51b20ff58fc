import FlotillaCore
import Logging
import Synchronization

extension EtcdCoordinator {
    /// Grants a lease, campaigns with it and keeps it alive meanwhile; starts over with a new lease when
    /// that one is lost or the campaign call's endpoint fails. Cancelling the task ends the campaign call
    /// and revokes the lease, which withdraws the candidacy.
    ///
    /// Every campaign call has a lease of its own: when a call is abandoned, the gateway may still resign
    /// its key later (etcd does when the call's context ends), which must never hit a live candidacy.
    public func campaign(candidate: String) async throws -> ElectionTerm {
        var logger = logger
        logger[metadataKey: "election.candidate"] = "\(candidate)"
        while true {
            try Task.checkCancellation()
            let lease = try await grantLease()
            logger[metadataKey: "etcd.lease"] = "\(lease.id)"
            let outcome: CampaignOutcome
            do {
                outcome = try await campaign(candidate: candidate, lease: lease, logger: logger)
            } catch {
                // Withdraw the candidacy (or the fresh term) whatever went wrong, even when cancelled.
                await withdraw(lease, logger: logger)
                throw error
            }
            switch outcome {
            case .elected(let term):
                logger.info(
                    "etcd campaign elected",
                    metadata: ["election.token": "\(term.token)", "etcd.lease.ttl": "\(lease.ttl)"]
                )
                return term
            case .restart(let reason):
                logger.warning("etcd campaign restarted", metadata: ["etcd.reason": "\(reason)"])
                // A lease merely unproven may still hold a key: it must not stand as a second candidacy.
                await withdraw(lease, logger: logger)
                // Not at once: a gateway that keeps refusing a fresh lease must not be asked in a tight loop.
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// How one campaign with one lease ended.
    enum CampaignOutcome: Sendable {
        case elected(ElectionTerm)
        /// Start over with a new lease.
        case restart(RestartReason)
    }

    enum RestartReason: String, Sendable {
        /// etcd no longer has the lease, or no keep-alive proved it for a whole TTL.
        case leaseLost = "lease-lost"
        /// The campaign call's connection failed.
        case campaignFailed = "campaign-failed"
        /// The keep-alives moved to another endpoint: the campaign call's may be frozen.
        case endpointMoved = "endpoint-moved"
    }

    /// Revokes `lease`, best effort: its keys go at once, or expire with it.
    private func withdraw(_ lease: Lease, logger: Logger) async {
        do {
            try await revoke(lease: lease.id, shielded: true)
        } catch {
            logger.warning("etcd lease revoke failed", metadata: ["error": "\(error)"])
        }
    }

    /// One campaign with one lease: the campaign call and the lease's keep-alives race; the first to end
    /// decides.
    private func campaign(candidate: String, lease: Lease, logger: Logger) async throws -> CampaignOutcome {
        let request = CampaignRequest(
            name: electionName,
            lease: EtcdInt64(lease.id),
            value: EtcdBytes.encode(candidate)
        )
        let campaignEndpoint = EndpointCell()
        logger.debug("etcd campaign started")
        let outcome = try await withThrowingTaskGroup(of: CampaignOutcome.self) { group in
            group.addTask {
                try await self.waitForElection(request, candidate: candidate, lease: lease, on: campaignEndpoint)
            }
            group.addTask {
                try await self.keepLeaseAlive(lease, campaignEndpoint: campaignEndpoint, logger: logger)
            }
            guard let first = try await group.next() else { return CampaignOutcome.restart(.leaseLost) }
            group.cancelAll()
            return first
        }
        guard case .elected = outcome else { return outcome }
        // etcd answers a campaign once the keys before this one are gone, without checking that this
        // one still is: prove the lease (and so the key) alive before calling the term won.
        switch try await keepAlive(lease: lease.id) {
        case .held: return outcome
        case .lost: return .restart(.leaseLost)
        }
    }

    /// The campaign call: blocks until etcd elects the candidate.
    private func waitForElection(
        _ request: CampaignRequest,
        candidate: String,
        lease: Lease,
        on campaignEndpoint: EndpointCell
    ) async throws -> CampaignOutcome {
        let answer: EtcdAnswer<CampaignAnswer>
        do {
            answer = try await call(.campaign, request, as: CampaignAnswer.self, mode: .waiting) { index in
                campaignEndpoint.set(index)
            }
        } catch let error as CoordinatorError where error.code == .unreachable {
            return .restart(.campaignFailed)
        }
        switch answer {
        case .answer(let answer):
            guard let leader = answer.leader, let key = leader.key, let revision = leader.rev?.value, revision > 0
            else {
                throw CoordinatorError(.protocolError, "etcd answered \(EtcdPath.campaign) without a leader key")
            }
            return .elected(
                ElectionTerm(token: UInt64(revision), leaderID: candidate, ttl: lease.ttl, lease: lease.id, key: key)
            )
        case .rejected(let rejection):
            if rejection.says("lease not found") { return .restart(.leaseLost) }
            throw rejection.coordinatorError
        }
    }

    /// Keeps `lease` alive every TTL/3. Ends when it is lost, or unproven for a whole TTL (etcd has then
    /// dropped it, or will before anyone can tell), or when the keep-alives had to leave the endpoint the
    /// campaign call waits on: a frozen endpoint would never answer it.
    private func keepLeaseAlive(
        _ lease: Lease,
        campaignEndpoint: EndpointCell,
        logger: Logger
    ) async throws -> CampaignOutcome {
        let clock = ContinuousClock()
        var proven = clock.now
        while true {
            try await Task.sleep(for: lease.ttl / 3)
            let sent = clock.now
            do {
                switch try await keepAlive(lease: lease.id) {
                case .held: proven = sent
                case .lost: return .restart(.leaseLost)
                }
            } catch let error as CoordinatorError {
                logger.warning("etcd lease keep-alive failed", metadata: ["error.code": "\(error.code)"])
                if clock.now - proven >= lease.ttl { return .restart(.leaseLost) }
                continue
            }
            if let waitingOn = campaignEndpoint.get(), waitingOn != preferredEndpoint.withLock({ $0 }) {
                return .restart(.endpointMoved)
            }
        }
    }
}

/// The endpoint index a campaign call was last sent to, shared by the campaign's two child tasks.
final class EndpointCell: Sendable {
    private let index = Mutex<Int?>(nil)

    func set(_ value: Int) { index.withLock { $0 = value } }
    func get() -> Int? { index.withLock { $0 } }
}
