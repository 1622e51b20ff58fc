import FlotillaCore
import FlotillaProcess
import Foundation
import Logging
import NIOPosix
import Synchronization
import Testing

@testable import FlotillaElection

/// The etcd backend against a real etcd (see `EtcdServer`), one etcd per test, one test at a time: the
/// timings below (a hand-over within 1 s, an expiry after a 2 s TTL) need the machine's attention.
@Suite("EtcdCoordinator: etcd's lease and election API", .serialized, .timeLimit(.minutes(1)))
struct EtcdCoordinatorTests {
    // MARK: Against etcd

    @Test(.enabled(if: EtcdServer.enabled, "\(EtcdServer.installHint)"))
    func resignHandsOverToTheWaitingCandidate() async throws {
        try await EtcdServer.with { server in
            let a = makeCoordinator([server.endpoint])
            let b = makeCoordinator([server.endpoint])
            try await withShutdown(a, b) {
                let termA = try await a.campaign(candidate: "a")
                #expect(termA.leaderID == "a")
                #expect(termA.ttl == .seconds(5))
                #expect(termA.lease != 0 && !termA.key.isEmpty)
                #expect(try await b.leader() == LeaderRecord(id: "a", token: termA.token))

                let (termB, handOver) = try await withThrowingTaskGroup(of: ElectionTerm?.self) { group in
                    group.addTask { try await b.campaign(candidate: "b") }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(500))
                        return nil
                    }
                    let early = try await group.next()!
                    #expect(early == nil, "b must wait while a leads")

                    let resigned = ContinuousClock.now
                    try await a.resign(termA)
                    group.addTask {
                        try await Task.sleep(for: .seconds(4))
                        throw TimedOut(what: "b's election after a resigned")
                    }
                    let term = try #require(try await group.next()!, "b elected")
                    let handOver = ContinuousClock.now - resigned
                    group.cancelAll()
                    return (term, handOver)
                }
                // Well before a's 5 s lease could expire: the resign handed over (generous for a loaded machine).
                #expect(handOver < .seconds(3))
                #expect(termB.leaderID == "b")
                #expect(termB.token > termA.token)
                #expect(try await a.leader() == LeaderRecord(id: "b", token: termB.token))
                #expect(try await a.keepAlive(termA) == .lost)
                #expect(try await b.keepAlive(termB) == .held(ttl: .seconds(5)))
            }
        }
    }

    @Test(.enabled(if: EtcdServer.enabled, "\(EtcdServer.installHint)"))
    func expiredLeaseElectsTheWaitingCandidate() async throws {
        try await EtcdServer.with { server in
            let a = makeCoordinator([server.endpoint], ttl: .seconds(2))
            let b = makeCoordinator([server.endpoint], ttl: .seconds(2))
            try await withShutdown(a, b) {
                // a is elected, then never keeps its lease alive again.
                let termA = try await a.campaign(candidate: "a")
                let started = ContinuousClock.now
                #expect(termA.ttl == .seconds(2))

                let termB = try await withThrowingTaskGroup(of: ElectionTerm.self) { group in
                    group.addTask { try await b.campaign(candidate: "b") }
                    group.addTask {
                        try await Task.sleep(for: .seconds(8))
                        throw TimedOut(what: "b's election after a's lease expired")
                    }
                    let term = try await group.next()!
                    group.cancelAll()
                    return term
                }
                let waited = ContinuousClock.now - started
                #expect(waited >= .seconds(1), "a's lease held for its TTL")
                #expect(waited < .seconds(6))
                #expect(termB.token > termA.token)
                #expect(try await a.keepAlive(termA) == .lost)
                #expect(try await a.leader() == LeaderRecord(id: "b", token: termB.token))

                // A third term, after b resigns and a campaigns again: tokens keep increasing.
                try await b.resign(termB)
                let termA2 = try await a.campaign(candidate: "a")
                #expect(termA2.token > termB.token)
                try await a.resign(termA2)
            }
        }
    }

    @Test(.enabled(if: EtcdServer.enabled, "\(EtcdServer.installHint)"))
    func cancelledCampaignWithdrawsTheCandidacy() async throws {
        try await EtcdServer.with { server in
            let a = makeCoordinator([server.endpoint])
            let b = makeCoordinator([server.endpoint])
            try await withShutdown(a, b) {
                let termB = try await b.campaign(candidate: "b")
                let outcome = await withTaskGroup(of: Result<ElectionTerm, any Error>.self) { group in
                    group.addTask {
                        do {
                            return .success(try await a.campaign(candidate: "a"))
                        } catch {
                            return .failure(error)
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(700))
                    group.cancelAll()
                    return await group.next()!
                }
                #expect(throws: CancellationError.self) { try outcome.get() }

                // Had a's candidacy survived, a would lead as soon as b resigns.
                try await b.resign(termB)
                #expect(try await b.leader() == nil)
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await b.leader() == nil)
            }
        }
    }

    @Test(.enabled(if: EtcdServer.enabled, "\(EtcdServer.installHint)"))
    func leaseLostWhileWaitingStartsOverWithANewLease() async throws {
        try await EtcdServer.with { server in
            let a = makeCoordinator([server.endpoint])
            let b = makeCoordinator([server.endpoint], ttl: .seconds(2))
            try await withShutdown(a, b) {
                let termA = try await a.campaign(candidate: "a")
                let termB = try await withThrowingTaskGroup(of: ElectionTerm.self) { group in
                    group.addTask { try await b.campaign(candidate: "b") }
                    group.addTask {
                        try await Task.sleep(for: .seconds(10))
                        throw TimedOut(what: "b's election")
                    }
                    // b's candidacy is the other key of the election; revoke its lease behind its back.
                    let firstLease = try await poll("b's candidacy") {
                        try await candidateLeases(a).first { $0 != termA.lease }
                    }
                    try await a.revoke(lease: firstLease, shielded: false)
                    let secondLease = try await poll("b's second candidacy") {
                        try await candidateLeases(a).first { $0 != termA.lease && $0 != firstLease }
                    }
                    try await a.resign(termA)
                    let term = try await group.next()!
                    group.cancelAll()
                    #expect(term.lease == secondLease)
                    return term
                }
                #expect(termB.token > termA.token)
                #expect(try await a.leader() == LeaderRecord(id: "b", token: termB.token))
            }
        }
    }

    @Test(.enabled(if: EtcdServer.enabled, "\(EtcdServer.installHint)"))
    func failsOverToTheNextEndpoint() async throws {
        try await EtcdServer.with { server in
            let closed = HostPort(host: "127.0.0.1", port: try EtcdServer.freePort())
            let coordinator = makeCoordinator([closed, server.endpoint])
            try await withShutdown(coordinator) {
                #expect(coordinator.description == "etcd://\(closed),\(server.endpoint)")

                #expect(try await coordinator.leader() == nil)
                #expect(coordinator.preferredEndpoint.withLock { $0 } == 1, "the endpoint that answered is remembered")
                let term = try await coordinator.campaign(candidate: "a")
                #expect(try await coordinator.keepAlive(term) == .held(ttl: .seconds(5)))
                #expect(try await coordinator.leader() == LeaderRecord(id: "a", token: term.token))
                try await coordinator.resign(term)
                #expect(try await coordinator.leader() == nil)
            }
        }
    }

    @Test(.enabled(if: EtcdServer.enabled, "\(EtcdServer.installHint)"))
    func frozenEndpointMovesTheWaitingCampaign() async throws {
        try await EtcdServer.with(members: 3) { cluster in
            // Freeze a follower: the other two keep a quorum and a raft leader.
            let frozen = try await followerIndex(of: cluster)
            let others = cluster.members.indices.filter { $0 != frozen }.map { cluster.members[$0].endpoint }
            let a = makeCoordinator(others)
            let b = makeCoordinator(
                [cluster.members[frozen].endpoint] + others,
                ttl: .seconds(2),
                requestTimeout: .milliseconds(500)
            )
            try await withShutdown(a, b) {
                let termA = try await a.campaign(candidate: "a")
                let (termB, waited) = try await withThrowingTaskGroup(of: ElectionTerm.self) { group in
                    group.addTask { try await b.campaign(candidate: "b") }
                    group.addTask {
                        try await Task.sleep(for: .seconds(15))
                        throw TimedOut(what: "b's election after its endpoint froze")
                    }
                    try await Task.sleep(for: .milliseconds(500))
                    // b's campaign call waits on the frozen member, which will never answer it.
                    cluster.members[frozen].process.send(SIGSTOP)
                    let frozenAt = ContinuousClock.now
                    try await a.resign(termA)
                    let term = try await group.next()!
                    group.cancelAll()
                    return (term, ContinuousClock.now - frozenAt)
                }
                cluster.members[frozen].process.send(SIGCONT)
                // One keep-alive period, its timeout, a new lease and a new campaign: about 1.5 s.
                #expect(waited < .seconds(6))
                #expect(termB.token > termA.token)
                #expect(b.preferredEndpoint.withLock { $0 } != 0)
                try await b.resign(termB)
            }
        }
    }

    // MARK: Without etcd

    @Test func unreachableEndpointsFailFast() async throws {
        let closed = [
            HostPort(host: "127.0.0.1", port: try EtcdServer.freePort()),
            HostPort(host: "127.0.0.1", port: try EtcdServer.freePort()),
        ]
        let coordinator = makeCoordinator(closed, requestTimeout: .seconds(1))
        try await withShutdown(coordinator) {
            let term = ElectionTerm(token: 1, leaderID: "a", ttl: .seconds(2), lease: 1, key: "a2V5")

            func expectUnreachable(_ operation: String, _ body: () async throws -> Void) async {
                let started = ContinuousClock.now
                let error = await #expect(throws: CoordinatorError.self, "\(operation)") { try await body() }
                #expect(ContinuousClock.now - started < .seconds(3), "\(operation) gave up in time")
                #expect(error?.code == .unreachable)
                for endpoint in closed {
                    #expect(error?.message.components(separatedBy: "\(endpoint)").count == 2, "each endpoint once")
                }
            }
            await expectUnreachable("keepAlive") { _ = try await coordinator.keepAlive(term) }
            await expectUnreachable("leader") { _ = try await coordinator.leader() }
            await expectUnreachable("campaign") { _ = try await coordinator.campaign(candidate: "a") }
        }
    }

    @Test func decodesTheGatewaysJSON() throws {
        let decoder = JSONDecoder()
        let grant = try decoder.decode(LeaseGrantAnswer.self, from: Data(#"{"ID":"2324035627155133445","TTL":2}"#.utf8))
        #expect(grant.ID?.value == 2_324_035_627_155_133_445)
        #expect(grant.TTL?.value == 2)
        let expired = try decoder.decode(LeaseKeepAliveAnswer.self, from: Data(#"{"result":{"ID":"7"}}"#.utf8))
        #expect(expired.result?.TTL == nil)
        let streamError = try decoder.decode(
            LeaseKeepAliveAnswer.self,
            from: Data(#"{"error":{"grpc_code":5,"message":"etcdserver: requested lease not found"}}"#.utf8)
        )
        #expect(streamError.error?.message == "etcdserver: requested lease not found")
        let encoded = try JSONEncoder().encode(LeaseIDRequest(ID: EtcdInt64(-3)))
        #expect(String(decoding: encoded, as: UTF8.self) == #"{"ID":"-3"}"#)
        #expect(EtcdBytes.encode("job") == "am9i")
        #expect(EtcdBytes.decode("am9i") == "job")
    }

    // MARK: Helpers

    private func makeCoordinator(
        _ endpoints: [HostPort],
        ttl: Duration = .seconds(5),
        requestTimeout: Duration = .seconds(2)
    ) -> EtcdCoordinator {
        EtcdCoordinator(
            configuration: .init(endpoints: endpoints, election: "jobs", ttl: ttl, requestTimeout: requestTimeout),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: Logger(label: "etcd-coordinator-tests", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    /// The leases of the election's keys (every candidate's, the leader's first), read with etcd's range call.
    private func candidateLeases(_ coordinator: EtcdCoordinator) async throws -> [Int64] {
        let request = RangeRequest(key: EtcdBytes.encode("jobs/"), range_end: EtcdBytes.encode("jobs0"))
        guard case .answer(let answer) = try await coordinator.call(.range, request, as: RangeAnswer.self) else {
            throw TimedOut(what: "a range answer")
        }
        return (answer.kvs ?? []).sorted { ($0.create_revision?.value ?? 0) < ($1.create_revision?.value ?? 0) }
            .compactMap { $0.lease?.value }
    }

    /// A member that is not the raft leader, from etcd's status call.
    private func followerIndex(of cluster: EtcdServer) async throws -> Int {
        for (index, member) in cluster.members.enumerated() {
            let probe = makeCoordinator([member.endpoint])
            let answer = try await withShutdown(probe) {
                try await probe.call(.status, [String: String](), as: StatusAnswer.self)
            }
            if case .answer(let status) = answer, let id = status.header?.member_id, let leader = status.leader,
                id != leader
            {
                return index
            }
        }
        throw TimedOut(what: "a follower")
    }

    /// Calls `probe` every 50 ms until it gives a value, for at most 5 s.
    private func poll<Value>(_ what: String, _ probe: () async throws -> Value?) async throws -> Value {
        let deadline = ContinuousClock.now + .seconds(5)
        for _ in 0..<100 where ContinuousClock.now < deadline {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TimedOut(what: what)
    }

    /// Runs `body`, then shuts the coordinators down whatever it did.
    private func withShutdown<Result>(
        _ coordinators: EtcdCoordinator...,
        body: () async throws -> Result
    ) async throws -> Result {
        do {
            let result = try await body()
            for coordinator in coordinators { await coordinator.shutdown() }
            return result
        } catch {
            for coordinator in coordinators { await coordinator.shutdown() }
            throw error
        }
    }
}

private struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

extension EtcdPath {
    fileprivate static let range = EtcdPath(rawValue: "/v3/kv/range")
    fileprivate static let status = EtcdPath(rawValue: "/v3/maintenance/status")
}

/// Member ids are uint64: kept as the strings the gateway writes.
private struct StatusAnswer: Decodable {
    struct Header: Decodable {
        var member_id: String?
    }

    var header: Header?
    var leader: String?
}

private struct RangeRequest: Encodable {
    var key: String
    var range_end: String
}

private struct RangeAnswer: Decodable {
    var kvs: [LeaderAnswer.KeyValue]?
}
