import AsyncHTTPClient
import FlotillaCore
import Logging
import NIOCore
import Synchronization

/// The etcd backend of `ElectionCoordinator`: etcd's lease and election API, through its HTTP/JSON
/// gateway (`/v3/…`, etcd 3.4 and 3.5).
///
/// A candidate grants a lease of `ttl` and campaigns with it; etcd elects the candidates of one
/// election in the order of their keys' create revisions, and that revision is the term's fencing
/// token. The lease is kept alive while the campaign waits; when it ends (a resignation, a revoke,
/// or no keep-alive for a TTL) etcd deletes the leader key and elects the next candidate.
///
/// Every call tries the endpoint that last answered, then the others in order, each at most once.
public final class EtcdCoordinator: ElectionCoordinator {
    /// How to reach etcd and what to elect.
    public struct Configuration: Sendable {
        /// etcd's client endpoints (plain HTTP), all of one cluster. No default; at least one.
        public var endpoints: [HostPort]
        /// The election's name: every candidate of one election uses the same. No default.
        public var election: String
        /// The lease TTL asked of etcd (default 5 s), rounded up to whole seconds. etcd raises a lower
        /// one to its minimum (1.5 × its election timeout: 2 s with etcd's defaults); a term carries the
        /// TTL etcd granted.
        public var ttl: Duration
        /// The deadline of each short call to one endpoint (default 2 s): lease grant, keep-alive,
        /// leader, resign, revoke; also the connect timeout. The campaign call has no deadline: it
        /// waits until the candidate is elected.
        public var requestTimeout: Duration

        public init(
            endpoints: [HostPort],
            election: String,
            ttl: Duration = .seconds(5),
            requestTimeout: Duration = .seconds(2)
        ) {
            self.endpoints = endpoints
            self.election = election
            self.ttl = ttl
            self.requestTimeout = requestTimeout
        }
    }

    let configuration: Configuration
    let client: HTTPClient
    let logger: Logger
    /// The index of the endpoint that answered last: the first one tried by the next call.
    let preferredEndpoint = Mutex(0)

    public init(configuration: Configuration, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.timeout.connect = .nanoseconds(configuration.requestTimeout.nanoseconds)
        // Failover to the next endpoint is this type's job: a refused connection must fail the call at
        // once instead of being retried against the same endpoint until the deadline.
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        clientConfiguration.redirectConfiguration = .disallow
        self.client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: clientConfiguration)
        var logger = logger
        logger[metadataKey: "election.name"] = "\(configuration.election)"
        self.logger = logger
    }

    public var description: String {
        CoordinatorURL.etcd(endpoints: configuration.endpoints).description
    }

    /// The election's name as the gateway takes it.
    var electionName: String { EtcdBytes.encode(configuration.election) }

    // MARK: ElectionCoordinator

    public func keepAlive(_ term: ElectionTerm) async throws -> KeepAliveResult {
        try await keepAlive(lease: term.lease)
    }

    public func resign(_ term: ElectionTerm) async throws {
        let leader = EtcdLeaderKey(
            name: electionName,
            key: term.key,
            rev: EtcdInt64(Int64(clamping: term.token)),
            lease: EtcdInt64(term.lease)
        )
        // Shielded: a step-down often runs in a task that is being cancelled, and must reach etcd anyway.
        var resignError: CoordinatorError?
        do {
            let answer = try await call(.resign, ResignRequest(leader: leader), as: EmptyAnswer.self, shielded: true)
            if case .rejected(let rejection) = answer { resignError = rejection.coordinatorError }
        } catch let error as CoordinatorError {
            resignError = error
        }
        // Revoking the lease deletes the leader key too, so the term is over once either call succeeded.
        do {
            try await revoke(lease: term.lease, shielded: true)
        } catch {
            throw resignError ?? error
        }
        if let resignError {
            logger.debug("etcd resign failed, lease revoked", metadata: ["error.code": "\(resignError.code)"])
        }
        logger.info(
            "etcd term resigned",
            metadata: ["election.token": "\(term.token)", "etcd.lease": "\(term.lease)"]
        )
    }

    public func leader() async throws -> LeaderRecord? {
        switch try await call(.leader, LeaderRequest(name: electionName), as: LeaderAnswer.self) {
        case .answer(let answer):
            guard let kv = answer.kv else { return nil }
            guard let revision = kv.create_revision?.value, revision > 0,
                let id = EtcdBytes.decode(kv.value ?? "")
            else {
                throw CoordinatorError(.protocolError, "etcd answered \(EtcdPath.leader) without a leader's revision")
            }
            return LeaderRecord(id: id, token: UInt64(revision))
        case .rejected(let rejection):
            if rejection.says("no leader") { return nil }
            throw rejection.coordinatorError
        }
    }

    public func shutdown() async {
        do {
            try await client.shutdown()
        } catch {
            logger.debug("etcd client shutdown failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Leases

    /// A lease as etcd granted it.
    struct Lease {
        var id: Int64
        var ttl: Duration
    }

    func grantLease() async throws -> Lease {
        let seconds = max(1, Int64((configuration.ttl.inSeconds).rounded(.up)))
        switch try await call(.leaseGrant, LeaseGrantRequest(TTL: EtcdInt64(seconds)), as: LeaseGrantAnswer.self) {
        case .answer(let answer):
            if let error = answer.error, !error.isEmpty {
                throw CoordinatorError(.rejected, "etcd refused \(EtcdPath.leaseGrant): \(error)")
            }
            guard let id = answer.ID?.value, id != 0, let ttl = answer.TTL?.value, ttl > 0 else {
                throw CoordinatorError(
                    .protocolError,
                    "etcd answered \(EtcdPath.leaseGrant) without a lease ID and TTL"
                )
            }
            logger.debug("etcd lease granted", metadata: ["etcd.lease": "\(id)", "etcd.lease.ttl": "\(ttl)"])
            return Lease(id: id, ttl: .seconds(ttl))
        case .rejected(let rejection):
            throw rejection.coordinatorError
        }
    }

    func keepAlive(lease: Int64) async throws -> KeepAliveResult {
        switch try await call(.leaseKeepAlive, LeaseIDRequest(ID: EtcdInt64(lease)), as: LeaseKeepAliveAnswer.self) {
        case .answer(let answer):
            if let error = answer.error {
                if error.message.contains("lease not found") { return .lost }
                throw CoordinatorError(.rejected, "etcd refused \(EtcdPath.leaseKeepAlive): \(error.message)")
            }
            guard let ttl = answer.result?.TTL?.value, ttl > 0 else {
                logger.debug("etcd lease lost", metadata: ["etcd.lease": "\(lease)"])
                return .lost
            }
            return .held(ttl: .seconds(ttl))
        case .rejected(let rejection):
            if rejection.says("lease not found") { return .lost }
            throw rejection.coordinatorError
        }
    }

    /// Revokes `lease`, which deletes its keys at once; a lease etcd no longer has counts as revoked.
    func revoke(lease: Int64, shielded: Bool) async throws {
        let answer = try await call(
            .leaseRevoke,
            LeaseIDRequest(ID: EtcdInt64(lease)),
            as: EmptyAnswer.self,
            shielded: shielded
        )
        if case .rejected(let rejection) = answer, !rejection.says("lease not found") {
            throw rejection.coordinatorError
        }
        logger.debug("etcd lease revoked", metadata: ["etcd.lease": "\(lease)"])
    }
}
