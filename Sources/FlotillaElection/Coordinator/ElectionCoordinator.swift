import Foundation

/// A term of leadership, as the coordinator granted it.
public struct ElectionTerm: Sendable, Hashable {
    /// Strictly increasing across every term of one election: etcd's create revision of the
    /// leader key, or the file's counter. The protected resource must reject a lower token.
    public var token: UInt64
    /// The candidate that holds the term.
    public var leaderID: String
    /// How long one acknowledged keep-alive proves the term, counted from when it was sent.
    public var ttl: Duration
    /// Backend state needed to keep the term alive and to resign it: etcd's lease id and leader
    /// key (base64 as the gateway gives it); unused by the file backend.
    public var lease: Int64
    public var key: String

    public init(token: UInt64, leaderID: String, ttl: Duration, lease: Int64 = 0, key: String = "") {
        self.token = token
        self.leaderID = leaderID
        self.ttl = ttl
        self.lease = lease
        self.key = key
    }
}

/// Who leads an election, as any candidate or observer can read it from the coordinator.
public struct LeaderRecord: Sendable, Hashable {
    public var id: String
    public var token: UInt64

    public init(id: String, token: UInt64) {
        self.id = id
        self.token = token
    }
}

/// The answer to a keep-alive.
public enum KeepAliveResult: Sendable, Hashable {
    /// The term still holds for `ttl` from the moment the keep-alive was sent.
    case held(ttl: Duration)
    /// The term is over (the lease expired or was revoked, or the lock was lost): step down now.
    case lost
}

/// A coordinator that implements the consensus: election state lives there, not in Flotilla.
///
/// Every call may throw `CoordinatorError` when the coordinator cannot be reached or answers
/// something unexpected; a throw says nothing about whether the term still holds (the caller's
/// lease clock decides that), whereas `.lost` says it is over.
public protocol ElectionCoordinator: Sendable {
    /// A short description for logs, e.g. `etcd://127.0.0.1:2379` or `file:/run/x.lock`.
    var description: String { get }

    /// Waits until `candidate` leads the election and returns its term. Keeps the candidacy alive
    /// (etcd: the lease) while waiting. Cancelling the task withdraws the candidacy.
    func campaign(candidate: String) async throws -> ElectionTerm

    /// Proves that `term` still holds. Called every TTL/3 by the elector.
    func keepAlive(_ term: ElectionTerm) async throws -> KeepAliveResult

    /// Gives the term up at once, so that a standby takes over without waiting for a lease.
    func resign(_ term: ElectionTerm) async throws

    /// The current leader, or nil when there is none.
    func leader() async throws -> LeaderRecord?

    /// Releases connections and files. The coordinator is not used afterwards.
    func shutdown() async

    /// A descriptor the leader's child process must inherit while `term` holds, or nil (default).
    /// The file backend gives its locked descriptor: the kernel then frees the lock only once
    /// both the elector and its child are gone, so no new leader starts before the old child died.
    func descriptorForChild(of term: ElectionTerm) -> Int32?
}

extension ElectionCoordinator {
    public func descriptorForChild(of term: ElectionTerm) -> Int32? { nil }
}

/// A coordinator that could not be reached, or answered something unexpected.
public struct CoordinatorError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: String {
            case unreachable
            case protocolError = "protocol"
            case rejected, io
        }
        fileprivate let value: Value
        /// No endpoint answered (connection refused, timed out).
        public static let unreachable = Code(value: .unreachable)
        /// An answer that could not be understood.
        public static let protocolError = Code(value: .protocolError)
        /// The coordinator refused the request (etcd's error answer).
        public static let rejected = Code(value: .rejected)
        /// A local file operation failed.
        public static let io = Code(value: .io)
        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    /// Bounded label for logs and metrics.
    public var shortDescription: String { code.description }
}
