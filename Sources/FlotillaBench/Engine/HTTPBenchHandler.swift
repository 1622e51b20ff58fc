import NIOCore
import NIOHTTP1

/// The parts of the HTTP workload that never change: built once per loop.
struct HTTPWorkload {
    /// Method, target and headers; the target is replaced per request when it holds `{key}`.
    let head: HTTPRequestHead
    let pathParts: [String]
    let body: ByteBuffer?

    init(plan: BenchPlan) {
        var headers = HTTPHeaders()
        if !plan.headers.contains(where: { $0.name.lowercased() == "host" }) {
            headers.add(name: "Host", value: plan.target.hostHeader)
        }
        for field in plan.headers {
            headers.add(name: field.name, value: field.value)
        }
        let method = HTTPMethod(rawValue: plan.method)
        let sendsLength = !plan.body.isEmpty || !(method == .GET || method == .HEAD || method == .DELETE)
        if sendsLength, !headers.contains(name: "content-length") {
            headers.add(name: "Content-Length", value: String(plan.body.count))
        }
        self.pathParts = plan.target.pathParts
        self.head = HTTPRequestHead(
            version: .http1_1,
            method: method,
            uri: pathParts.count == 1 ? pathParts[0] : pathParts.joined(separator: plan.key(0)),
            headers: headers
        )
        self.body = plan.body.isEmpty ? nil : ByteBuffer(bytes: plan.body)
    }
}

/// A virtual user of `--sessions`: its own cookie jar, sent back on every request it makes.
struct SessionUser {
    private var cookies: [(name: String, value: String)]
    /// The `Cookie` header value, rebuilt only when a cookie changes.
    private(set) var header: String

    init(cookieName: String, id: String) {
        self.cookies = [(cookieName, id)]
        self.header = "\(cookieName)=\(id)"
    }

    /// Keeps the `name=value` of a `Set-Cookie` header (attributes such as Path are ignored).
    mutating func store(setCookie: String) {
        let pair = setCookie.split(separator: ";", maxSplits: 1).first ?? ""
        guard let equals = pair.firstIndex(of: "=") else { return }
        let name = pair[..<equals].trimmingCharacters(in: " \t")
        let value = pair[pair.index(after: equals)...].trimmingCharacters(in: " \t")
        guard !name.isEmpty else { return }
        if let index = cookies.firstIndex(where: { $0.name == name }) {
            guard cookies[index].value != value else { return }
            cookies[index].value = value
        } else {
            cookies.append((name, value))
        }
        header = cookies.map { "\($0.name)=\($0.value)" }.joined(separator: "; ")
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in blanks: String) -> String {
        var text = self
        while let first = text.first, blanks.contains(first) { text = text.dropFirst() }
        while let last = text.last, blanks.contains(last) { text = text.dropLast() }
        return String(text)
    }
}

/// One connection to an HTTP/1.1 target, through NIOHTTP1's client codec (keep-alive, pipelining).
final class HTTPBenchHandler: ChannelInboundHandler, BenchConnection {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let driver: LoopDriver
    private let slot: ConnectionSlot
    private let workload: HTTPWorkload
    private var context: ChannelHandlerContext?
    private var status: UInt = 0
    private var closing = false
    private var unflushed = false
    /// The response being read said `Connection: close`: no more requests go on this connection.
    private var lastResponse = false

    init(driver: LoopDriver, slot: ConnectionSlot) {
        self.driver = driver
        self.slot = slot
        self.workload = driver.http!
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        driver.connected(slot, self)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if slot.connection === self { driver.disconnected(slot) }
        self.context = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status.code
            if !head.isKeepAlive { lastResponse = true }
            if !driver.users.isEmpty, let user = slot.pending.first?.user, user >= 0 {
                for cookie in head.headers["set-cookie"] {
                    driver.users[Int(user)].store(setCookie: cookie)
                }
            }
        case .body:
            break
        case .end:
            let failure: String? = status >= 500 ? "http_5xx" : status >= 400 ? "http_4xx" : nil
            driver.complete(slot, via: self, now: NIODeadline.now().uptimeNanoseconds, failure: failure)
            if lastResponse, !closing {
                // Keep-alive ends here (nginx does so every 1000 requests by default): reconnect.
                slot.closeAnnounced = true
                close()
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A response NIOHTTP1 cannot parse.
        if error is HTTPParserError {
            driver.protocolError(slot)
        } else {
            close()
        }
    }

    // MARK: BenchConnection

    var acceptsRequests: Bool { !closing && !lastResponse }

    func writeRequest(start: UInt64, now: UInt64) -> PendingRequest {
        guard let context else { return PendingRequest(start: start, sent: now, keys: 0, user: -1) }
        var head = workload.head
        if workload.pathParts.count > 1 {
            head.uri = workload.pathParts.joined(separator: driver.plan.key(driver.sampler.next(&driver.random)))
        }
        var user: Int32 = -1
        if !driver.users.isEmpty {
            let index = driver.takeUser()
            head.headers.add(name: "Cookie", value: driver.users[index].header)
            user = Int32(index)
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let body = workload.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        unflushed = true
        return PendingRequest(start: start, sent: now, keys: 0, user: user)
    }

    func writePrefill(key index: Int, now: UInt64) -> PendingRequest {
        preconditionFailure("an HTTP target has no prefill")
    }

    func flush() {
        guard unflushed, let context else { return }
        unflushed = false
        context.flush()
    }

    func close() {
        guard !closing else { return }
        closing = true
        context?.close(promise: nil)
    }
}
