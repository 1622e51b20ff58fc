import NIOCore
import NIOPosix
import Synchronization

/// How long the delay server holds each response: the injected latency whose true distribution the bench tests
/// compare `flotilla bench`'s report against.
enum DelayPlan: Sendable {
    /// A fixed table used cyclically: a counter shared by all connections picks the next entry for each request.
    case cycle([TimeAmount])
    /// Every response waits `base`, except that once, `startsAfter` the first request, the server stalls for
    /// `lasts`: a request that arrives during the stall waits until it ends.
    case stall(base: TimeAmount, startsAfter: TimeAmount, lasts: TimeAmount = .seconds(1))
}

/// The wire protocol the delay server speaks.
enum DelayWireProtocol: Sendable {
    /// The memcached text protocol: every `get` misses (`END`), every `set` is `STORED`.
    case memcache
    /// HTTP/1.1 keep-alive: every request gets `200 OK` with the body `ok`.
    case http
}

/// One HTTP request as the delay server received it.
struct DelayHTTPRequest: Sendable {
    var method: String
    var path: String
    /// Every `Cookie` header of the request, in order.
    var cookieHeaders: [String]
    /// Which accepted connection carried the request (0, 1, … in accept order).
    var connection: Int
    var arrival: NIODeadline

    /// The cookies of all `Cookie` headers, by name (the last one wins on a repeated name).
    var cookies: [String: String] {
        var cookies: [String: String] = [:]
        for header in cookieHeaders {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                cookies[parts[0].delayTrimmed] = parts[1].delayTrimmed
            }
        }
        return cookies
    }
}

/// A session the delay server gave a `backend` cookie to (see `DelayServer.Configuration.setsBackendCookie`).
struct DelaySession: Sendable {
    /// The session cookie's value.
    var id: String
    /// The `backend=<n>` value handed out: 1 for the first session seen, 2 for the next, …
    var backend: Int
    /// When the response carrying `Set-Cookie` was due to be written.
    var cookieSentAt: NIODeadline
}

/// An in-process server with a known, injected latency per response, bound to 127.0.0.1 on a free port.
///
/// It records the truth — every delay it injected and, for HTTP, every request's path and cookies — so that a test
/// can compute the percentiles a load generator ought to report. Delays use the event loop's timers (timerfd on
/// Linux), not sleeps; responses on one connection are written in request order, as pipelining requires.
struct DelayServer: Sendable {
    struct Configuration: Sendable {
        var wireProtocol: DelayWireProtocol
        var plan: DelayPlan
        /// HTTP only: answer the first request of each session (a new value of `sessionCookie`) with
        /// `Set-Cookie: backend=<n>; Path=/`. Default false.
        var setsBackendCookie = false
        /// HTTP only: the cookie that identifies a session. Default `flotilla_session`.
        var sessionCookie = "flotilla_session"
    }

    let port: Int
    let configuration: Configuration
    fileprivate let log: DelayLog

    /// Every delay injected so far, in the order the requests arrived.
    var delays: [TimeAmount] { log.state.withLock { $0.delays } }

    /// How long the server held each request it answered, as it measured it (from reading the request to
    /// writing its reply: the injected delay plus however late its timer fired on a busy machine), in
    /// microseconds, sorted: the true latency distribution, less the network.
    var sortedHeldMicroseconds: [Double] {
        log.state.withLock { $0.held }.map { Double($0.nanoseconds) / 1_000 }.sorted()
    }

    /// Every HTTP request received so far.
    var httpRequests: [DelayHTTPRequest] { log.state.withLock { $0.httpRequests } }

    /// The sessions handed a `backend` cookie, by session id.
    var sessions: [String: DelaySession] { log.state.withLock { $0.sessions } }

    /// The keys of every memcached `get` and `set` received so far.
    var memcacheKeys: [String] { log.state.withLock { $0.memcacheKeys } }
}

/// Runs `body` with a fresh delay server, shutting it down afterwards whether `body` returns or throws.
func withDelayServer<Result>(
    _ configuration: DelayServer.Configuration,
    _ body: (DelayServer) async throws -> Result
) async throws -> Result {
    // One loop: the server does little work per request, and on a two-core machine the load generator under test
    // needs the other core.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let log = DelayLog(configuration)
    let result: Swift.Result<Result, any Error>
    do {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = DelayConnectionHandler(log: log, connection: log.nextConnection())
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let server = DelayServer(port: channel.localAddress?.port ?? 0, configuration: configuration, log: log)
        do {
            result = .success(try await body(server))
        } catch {
            result = .failure(error)
        }
        try? await channel.close()
    } catch {
        result = .failure(error)
    }
    try await group.shutdownGracefully()
    return try result.get()
}

// MARK: - Shared state

/// The delay decisions and the record of what was received, shared by all connections.
private final class DelayLog: Sendable {
    struct State {
        var nextTableEntry = 0
        var firstRequestAt: NIODeadline?
        var connections = 0
        var delays: [TimeAmount] = []
        /// Measured: from reading each request to writing its reply.
        var held: [TimeAmount] = []
        var httpRequests: [DelayHTTPRequest] = []
        var sessions: [String: DelaySession] = [:]
        var memcacheKeys: [String] = []
    }

    let configuration: DelayServer.Configuration
    let state = Mutex(State())

    init(_ configuration: DelayServer.Configuration) {
        self.configuration = configuration
    }

    func nextConnection() -> Int {
        state.withLock { state in
            defer { state.connections += 1 }
            return state.connections
        }
    }

    /// Decides the delay of a request arriving now and records it; returns the delay and, for the first HTTP
    /// request of a session, the `backend` number to hand out.
    func admit(_ request: DelayRequest, connection: Int, now: NIODeadline) -> (TimeAmount, backend: Int?) {
        state.withLock { state in
            let delay = Self.delay(of: configuration.plan, state: &state, now: now)
            state.delays.append(delay)
            var backend: Int?
            switch request {
            case .memcache(let keys, _):
                state.memcacheKeys += keys
            case .http(let method, let path, let cookieHeaders):
                let record = DelayHTTPRequest(
                    method: method,
                    path: path,
                    cookieHeaders: cookieHeaders,
                    connection: connection,
                    arrival: now
                )
                state.httpRequests.append(record)
                if configuration.setsBackendCookie, let id = record.cookies[configuration.sessionCookie],
                    state.sessions[id] == nil
                {
                    let session = DelaySession(id: id, backend: state.sessions.count + 1, cookieSentAt: now + delay)
                    state.sessions[id] = session
                    backend = session.backend
                }
            }
            return (delay, backend)
        }
    }

    func recordHeld(_ held: [TimeAmount]) {
        state.withLock { $0.held += held }
    }

    private static func delay(of plan: DelayPlan, state: inout State, now: NIODeadline) -> TimeAmount {
        let first = state.firstRequestAt ?? now
        state.firstRequestAt = first
        switch plan {
        case .cycle(let table):
            guard !table.isEmpty else { return .zero }
            defer { state.nextTableEntry = (state.nextTableEntry + 1) % table.count }
            return table[state.nextTableEntry]
        case .stall(let base, let startsAfter, let lasts):
            let start = first + startsAfter
            let end = start + lasts
            guard now >= start, now < end else { return base }
            return max(base, end - now)
        }
    }
}

// MARK: - Wire

/// A request the delay server understood.
private enum DelayRequest {
    /// `get`/`gets` (a miss) or a storage command (`STORED`); `isGet` tells which.
    case memcache(keys: [String], isGet: Bool)
    case http(method: String, path: String, cookieHeaders: [String])
}

/// What a parse step found at the front of the buffer.
private enum DelayParse {
    /// A request to answer after its delay.
    case request(DelayRequest)
    /// A request answered at once, without a recorded delay (memcached `version`, unknown commands).
    case immediate(String)
    /// The client asked to close the connection.
    case quit
}

extension ByteBuffer {
    /// Reads one request off the front of the buffer; nil when more bytes are needed.
    fileprivate mutating func readDelayRequest(_ wireProtocol: DelayWireProtocol) -> DelayParse? {
        switch wireProtocol {
        case .memcache: readMemcacheRequest()
        case .http: readHTTPRequest()
        }
    }

    private mutating func readMemcacheRequest() -> DelayParse? {
        let view = readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let lineLength = newline - view.startIndex + 1
        // Bytes, not Characters: "\r\n" is a single Character in Swift.
        var textLength = lineLength - 1
        if textLength > 0, view[newline - 1] == UInt8(ascii: "\r") { textLength -= 1 }
        let line = getString(at: readerIndex, length: textLength) ?? ""
        let tokens = line.split(separator: " ").map(String.init)
        switch tokens.first {
        case "get", "gets":
            moveReaderIndex(forwardBy: lineLength)
            return .request(.memcache(keys: Array(tokens.dropFirst()), isGet: true))
        case "set", "add", "replace", "append", "prepend":
            guard tokens.count >= 5, let count = Int(tokens[4]), count >= 0 else {
                moveReaderIndex(forwardBy: lineLength)
                return .immediate("CLIENT_ERROR bad command line format\r\n")
            }
            // The data block and its CRLF must be here too.
            guard readableBytes >= lineLength + count + 2 else { return nil }
            moveReaderIndex(forwardBy: lineLength + count + 2)
            return .request(.memcache(keys: [tokens[1]], isGet: false))
        case "version":
            moveReaderIndex(forwardBy: lineLength)
            return .immediate("VERSION 1.6.0-delay-server\r\n")
        case "quit":
            moveReaderIndex(forwardBy: lineLength)
            return .quit
        default:
            moveReaderIndex(forwardBy: lineLength)
            return .immediate("ERROR\r\n")
        }
    }

    private mutating func readHTTPRequest() -> DelayParse? {
        let view = readableBytesView
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let headEnd = view.firstRange(of: terminator) else { return nil }
        let headLength = headEnd.upperBound - view.startIndex
        let head = getString(at: readerIndex, length: headLength) ?? ""
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
        let requestLine = lines.isEmpty ? [] : lines.removeFirst().split(separator: " ").map(String.init)
        var contentLength = 0
        var cookieHeaders: [String] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].delayTrimmed
            if name == "content-length" { contentLength = Int(value) ?? 0 }
            if name == "cookie" { cookieHeaders.append(value) }
        }
        guard readableBytes >= headLength + contentLength else { return nil }
        moveReaderIndex(forwardBy: headLength + contentLength)
        return .request(
            .http(
                method: requestLine.first ?? "",
                path: requestLine.count > 1 ? requestLine[1] : "",
                cookieHeaders: cookieHeaders
            )
        )
    }
}

extension StringProtocol {
    fileprivate var delayTrimmed: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

// MARK: - Connection

/// One connection: parses requests, holds each response for its delay, writes responses in request order.
private final class DelayConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A response in request order; `ready` once its delay has passed.
    private struct Pending {
        var response: ByteBuffer
        var ready: Bool
        /// When the request was read; nil for answers given at once.
        var arrival: NIODeadline?
    }

    private let log: DelayLog
    private let connection: Int
    private var received: ByteBuffer?
    private var pending: [Pending] = []
    /// The sequence number of `pending[0]`.
    private var firstPending = 0
    private var isActive = true

    init(log: DelayLog, connection: Int) {
        self.log = log
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if received == nil {
            received = incoming
        } else {
            received?.writeBuffer(&incoming)
        }
        while isActive, let parsed = received?.readDelayRequest(log.configuration.wireProtocol) {
            handle(parsed, context: context)
        }
        received?.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        isActive = false
        context.close(promise: nil)
    }

    private func handle(_ parsed: DelayParse, context: ChannelHandlerContext) {
        switch parsed {
        case .quit:
            isActive = false
            context.close(promise: nil)
        case .immediate(let text):
            enqueue(context.channel.allocator.buffer(string: text), delay: nil, context: context)
        case .request(let request):
            let arrival = NIODeadline.now()
            let (delay, backend) = log.admit(request, connection: connection, now: arrival)
            let response: String
            switch request {
            case .memcache(_, let isGet):
                response = isGet ? "END\r\n" : "STORED\r\n"
            case .http:
                let cookie = backend.map { "Set-Cookie: backend=\($0); Path=/\r\n" } ?? ""
                response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\(cookie)\r\nok"
            }
            enqueue(
                context.channel.allocator.buffer(string: response),
                delay: delay,
                arrival: arrival,
                context: context
            )
        }
    }

    private func enqueue(
        _ response: ByteBuffer,
        delay: TimeAmount?,
        arrival: NIODeadline? = nil,
        context: ChannelHandlerContext
    ) {
        let sequence = firstPending + pending.count
        pending.append(Pending(response: response, ready: delay == nil, arrival: arrival))
        guard let delay else {
            flushReady(context: context)
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.markReady(sequence, context: context)
        }
    }

    private func markReady(_ sequence: Int, context: ChannelHandlerContext) {
        guard isActive else { return }
        pending[sequence - firstPending].ready = true
        flushReady(context: context)
    }

    private func flushReady(context: ChannelHandlerContext) {
        var wrote = 0
        var held: [TimeAmount] = []
        let now = NIODeadline.now()
        while wrote < pending.count, pending[wrote].ready {
            context.write(wrapOutboundOut(pending[wrote].response), promise: nil)
            if let arrival = pending[wrote].arrival { held.append(now - arrival) }
            wrote += 1
        }
        guard wrote > 0 else { return }
        if !held.isEmpty { log.recordHeld(held) }
        pending.removeFirst(wrote)
        firstPending += wrote
        context.flush()
    }
}

@available(*, unavailable)
extension DelayConnectionHandler: Sendable {}
