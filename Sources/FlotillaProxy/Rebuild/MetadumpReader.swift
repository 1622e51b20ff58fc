import FlotillaCore
import FlotillaMemcache
import NIOCore
import NIOPosix

/// Lists the keys a shard holds with `lru_crawler metadump all` (memcached, and `flotilla cache`),
/// as its reader asks for them: the connection reads from the socket only when the keys read so
/// far were taken, so a shard with millions of keys is listed in bounded memory, as fast as its
/// keys are copied.
final class MetadumpReader: Sendable {
    /// Why a listing stopped.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The shard cannot list its keys (`ERROR` or `CLIENT_ERROR`: a server without metadump, or
        /// with its crawler or dumps turned off): asking again will not help.
        var unsupported = false
    }

    private let channel: any Channel
    private let collector: KeyCollector

    private init(channel: any Channel, collector: KeyCollector) {
        self.channel = channel
        self.collector = collector
    }

    /// Connects to the shard and asks it for its keys.
    static func start(
        at address: SocketAddress,
        group: any EventLoopGroup,
        timeout: Duration
    ) async throws
        -> MetadumpReader
    {
        let collector = KeyCollector()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanoseconds))
            .channelOption(ChannelOptions.autoRead, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(to: address)
            .get()
        try await channel.writeAndFlush(ByteBuffer(string: "lru_crawler metadump all\r\n"))
        return MetadumpReader(channel: channel, collector: collector)
    }

    /// The next keys listed (raw bytes, URI-decoded), at least one; nil once the listing ended.
    /// Fails when the shard says nothing for `timeout`, closes the connection, or answers an error.
    func next(timeout: Duration) async throws -> [ByteBuffer]? {
        let promise = channel.eventLoop.makePromise(of: [ByteBuffer]?.self)
        let collector = self.collector
        do {
            try await channel.eventLoop.submit { collector.ask(promise, timeout: timeout) }.get()
        } catch {
            promise.fail(error)
            throw error
        }
        return try await promise.futureResult.get()
    }

    func close() {
        channel.close(promise: nil)
    }

    /// The raw key of a metadump line (`key=<uri-encoded> exp=…`); nil for another line.
    static func key(ofLine line: ByteBufferView) -> ByteBuffer? {
        guard line.starts(with: "key=".utf8) else { return nil }
        var key = ByteBuffer()
        var index = line.index(line.startIndex, offsetBy: 4)
        while index < line.endIndex, line[index] != UInt8(ascii: " ") {
            if line[index] == UInt8(ascii: "%"), line.distance(from: index, to: line.endIndex) >= 3,
                let high = hexValue(line[index + 1]), let low = hexValue(line[index + 2])
            {
                key.writeInteger(high << 4 | low)
                index += 3
            } else {
                key.writeInteger(line[index])
                index += 1
            }
        }
        return key.readableBytes > 0 ? key : nil
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}

/// Splits the dump into lines and keeps the keys until they are asked for. Reads from the socket
/// only while a reader waits and no key is kept.
private final class KeyCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    // Touched only on the channel's event loop.
    private var context: ChannelHandlerContext?
    private var buffer = ByteBuffer()
    private var keys: [ByteBuffer] = []
    private var ended = false
    private var failure: MetadumpReader.Failure?
    private var waiting: EventLoopPromise<[ByteBuffer]?>?
    private var deadline: Scheduled<Void>?
    private var asked = 0

    /// Longest line accepted: a key of 250 bytes, each URI-encoded in three, and the fields.
    static let maxLine = 1_024

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func ask(_ promise: EventLoopPromise<[ByteBuffer]?>, timeout: Duration) {
        waiting = promise
        asked += 1
        let ask = asked
        deadline = context?.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { [self] in
            guard ask == asked else { return }
            fail("no keys listed for \(timeout)")
        }
        deliverOrRead()
    }

    private func deliverOrRead() {
        guard let promise = waiting else { return }
        if let failure {
            answer { promise.fail(failure) }
        } else if !keys.isEmpty {
            let taken = keys
            keys = []
            answer { promise.succeed(taken) }
        } else if ended {
            answer { promise.succeed(nil) }
        } else {
            context?.read()
        }
    }

    private func answer(_ body: () -> Void) {
        waiting = nil
        deadline?.cancel()
        deadline = nil
        body()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        while failure == nil, !ended, let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let line = buffer.readableBytesView[buffer.readerIndex..<newline]
            if let key = MetadumpReader.key(ofLine: line) {
                keys.append(key)
            } else if line.starts(with: "END".utf8) {
                ended = true
            } else {
                let text = String(decoding: line, as: UTF8.self).trimmingSuffix()
                let unsupported = text.hasPrefix("ERROR") || text.hasPrefix("CLIENT_ERROR")
                fail("the shard answered lru_crawler metadump with \"\(text)\"", unsupported: unsupported)
            }
            buffer.moveReaderIndex(to: newline + 1)
        }
        if buffer.readableBytes > Self.maxLine {
            fail("a metadump line longer than \(Self.maxLine) bytes")
        }
        buffer.discardReadBytes()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        deliverOrRead()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !ended { fail("the shard closed the connection during the listing") }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail("\(error)")
        context.close(promise: nil)
    }

    private func fail(_ description: String, unsupported: Bool = false) {
        if failure == nil { failure = MetadumpReader.Failure(description: description, unsupported: unsupported) }
        deliverOrRead()
    }
}

extension String {
    fileprivate func trimmingSuffix() -> String {
        var text = self
        while text.last == "\r" || text.last == " " { text.removeLast() }
        return text
    }
}
