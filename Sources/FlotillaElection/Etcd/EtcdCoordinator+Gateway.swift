import AsyncHTTPClient
import FlotillaCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A path of the gateway; the ones this coordinator calls are the static members.
struct EtcdPath: Hashable, Sendable, CustomStringConvertible {
    var rawValue: String

    static let leaseGrant = EtcdPath(rawValue: "/v3/lease/grant")
    static let leaseKeepAlive = EtcdPath(rawValue: "/v3/lease/keepalive")
    static let leaseRevoke = EtcdPath(rawValue: "/v3/lease/revoke")
    static let campaign = EtcdPath(rawValue: "/v3/election/campaign")
    static let leader = EtcdPath(rawValue: "/v3/election/leader")
    static let resign = EtcdPath(rawValue: "/v3/election/resign")

    var description: String { rawValue }
}

/// etcd's error answer to one call (`{"error","message","code"}`), before the caller decides what it means.
struct EtcdRejection: Error {
    var endpoint: HostPort
    var path: EtcdPath
    var message: String

    func says(_ fragment: String) -> Bool { message.contains(fragment) }

    var coordinatorError: CoordinatorError {
        CoordinatorError(.rejected, "etcd at \(endpoint) refused \(path): \(message)")
    }
}

/// What one call got: the answer, or etcd's refusal.
enum EtcdAnswer<Answer> {
    case answer(Answer)
    case rejected(EtcdRejection)
}

/// How long a call may take, and whether the task's cancellation ends it.
enum EtcdCallMode {
    /// `requestTimeout` per endpoint; cancellable.
    case short
    /// `requestTimeout` per endpoint; finishes even in a cancelled task (resign, withdrawing a candidacy).
    case shielded
    /// No deadline once connected (the campaign); cancellable.
    case waiting
}

extension EtcdCoordinator {
    /// Larger answers are not etcd's: no call here gets more than a few hundred bytes.
    static let maximumAnswerBytes = 1 << 20

    func call<Request: Encodable, Answer: Decodable>(
        _ path: EtcdPath,
        _ request: Request,
        as answerType: Answer.Type,
        shielded: Bool
    ) async throws -> EtcdAnswer<Answer> {
        try await call(path, request, as: answerType, mode: shielded ? .shielded : .short)
    }

    /// POSTs `request` to the endpoint that answered last, then to each other endpoint in turn until one
    /// answers (each at most once); throws `.unreachable` naming every endpoint tried when none does.
    /// `willSend` learns the index of each endpoint before it is tried.
    func call<Request: Encodable, Answer: Decodable>(
        _ path: EtcdPath,
        _ request: Request,
        as answerType: Answer.Type,
        mode: EtcdCallMode = .short,
        willSend: (Int) -> Void = { _ in }
    ) async throws -> EtcdAnswer<Answer> {
        let endpoints = configuration.endpoints
        guard !endpoints.isEmpty else {
            throw CoordinatorError(.unreachable, "no etcd endpoint is configured")
        }
        let body: ByteBuffer
        do {
            body = ByteBuffer(bytes: try JSONEncoder().encode(request))
        } catch {
            throw CoordinatorError(.protocolError, "cannot encode the body of \(path): \(error)")
        }
        let first = preferredEndpoint.withLock { $0 } % endpoints.count
        var failures: [String] = []
        for step in 0..<endpoints.count {
            let index = (first + step) % endpoints.count
            let endpoint = endpoints[index]
            let status: UInt
            let bytes: ByteBuffer
            willSend(index)
            do {
                (status, bytes) = try await send(path, body, to: endpoint, mode: mode)
            } catch {
                if mode != .shielded, Task.isCancelled { throw CancellationError() }
                let reason = Self.describeTransportFailure(
                    error,
                    timeout: mode == .waiting ? nil : configuration.requestTimeout
                )
                logger.warning(
                    "etcd endpoint failed",
                    metadata: ["etcd.endpoint": "\(endpoint)", "etcd.path": "\(path)", "error": "\(reason)"]
                )
                failures.append("\(endpoint) \(reason)")
                continue
            }
            let previous = preferredEndpoint.withLock { preferred in
                defer { preferred = index }
                return preferred
            }
            if previous != index {
                logger.info(
                    "etcd endpoint switched",
                    metadata: ["etcd.endpoint": "\(endpoint)", "etcd.endpoint.previous": "\(endpoints[previous])"]
                )
            }
            return try Self.decode(status: status, bytes: bytes, as: answerType, path: path, endpoint: endpoint)
        }
        throw CoordinatorError(
            .unreachable,
            "no etcd endpoint answered \(path): " + failures.joined(separator: "; ")
        )
    }

    /// One POST to one endpoint: the status and the whole body, or the transport's error.
    private func send(
        _ path: EtcdPath,
        _ body: ByteBuffer,
        to endpoint: HostPort,
        mode: EtcdCallMode
    ) async throws -> (UInt, ByteBuffer) {
        let url = "http://\(endpoint)\(path)"
        let timeout = TimeAmount.nanoseconds(configuration.requestTimeout.nanoseconds)
        switch mode {
        case .short, .waiting:
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(body)
            let deadline: NIODeadline = mode == .waiting ? .distantFuture : .now() + timeout
            let response = try await client.execute(request, deadline: deadline)
            let bytes = try await response.body.collect(upTo: Self.maximumAnswerBytes)
            return (response.status.code, bytes)
        case .shielded:
            // The future-based API does not watch the task, so a cancelled task still gets its answer.
            let request = try HTTPClient.Request(
                url: url,
                method: .POST,
                headers: ["content-type": "application/json"],
                body: .byteBuffer(body)
            )
            let response = try await client.execute(request: request, deadline: .now() + timeout).get()
            return (response.status.code, response.body ?? ByteBuffer())
        }
    }

    private static func decode<Answer: Decodable>(
        status: UInt,
        bytes: ByteBuffer,
        as answerType: Answer.Type,
        path: EtcdPath,
        endpoint: HostPort
    ) throws -> EtcdAnswer<Answer> {
        let decoder = JSONDecoder()
        if (200..<300).contains(status) {
            do {
                return .answer(try decoder.decode(answerType, from: Data(bytes.readableBytesView)))
            } catch {
                throw CoordinatorError(
                    .protocolError,
                    "etcd at \(endpoint) answered \(path) with JSON that is not etcd's (\(Self.describe(error)))"
                )
            }
        }
        let failure = try? decoder.decode(EtcdErrorAnswer.self, from: Data(bytes.readableBytesView))
        guard let message = failure?.message ?? failure?.error else {
            throw CoordinatorError(
                .protocolError,
                "etcd at \(endpoint) answered \(path) with HTTP \(status) and no etcd error (is it etcd 3.4 or later?)"
            )
        }
        return .rejected(EtcdRejection(endpoint: endpoint, path: path, message: message))
    }

    /// A decoding error, without the payload.
    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "no \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            "bad " + (context.codingPath.map(\.stringValue).joined(separator: ".").nonEmpty ?? "document")
        default: "undecodable"
        }
    }

    /// A short reason for logs and error messages: `connection refused`, `no answer within 2s`.
    static func describeTransportFailure(_ error: any Error, timeout: Duration?) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "connect timed out"
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return timeout.map { "no answer within \(DurationText.format($0))" } ?? "timed out"
            case .remoteConnectionClosed: return "closed the connection"
            case .cancelled: return "cancelled"
            default: return "\(error)"
            }
        }
        if let error = error as? NIOConnectionError {
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            return refused ? "connection refused" : "cannot connect"
        }
        if let error = error as? IOError {
            return error.errnoCode == ECONNREFUSED ? "connection refused" : "\(error)"
        }
        if case .connectTimeout = error as? ChannelError {
            return "connect timed out"
        }
        return "\(error)"
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
