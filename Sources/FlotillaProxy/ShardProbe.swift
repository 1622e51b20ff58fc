import Foundation
import NIOCore
import NIOPosix

/// A one-off connection to a down shard: checks it answers, and replays its hints in order.
final class ShardProbe: Sendable {
    private let channel: any Channel
    private let replies: LineCollector

    private init(channel: any Channel, replies: LineCollector) {
        self.channel = channel
        self.replies = replies
    }

    static func connect(
        to address: SocketAddress,
        group: any EventLoopGroup,
        timeout: Duration
    ) async throws -> ShardProbe {
        let collector = LineCollector()
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(
                .nanoseconds(
                    Int64(timeout.components.seconds) * 1_000_000_000
                        + timeout.components.attoseconds / 1_000_000_000
                )
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(to: address)
            .get()
        return ShardProbe(channel: channel, replies: collector)
    }

    /// Sends one request and waits for its first reply line.
    func roundTrip(_ request: ByteBuffer, timeout: Duration) async throws -> String {
        let reply = channel.eventLoop.makePromise(of: String.self)
        try await channel.eventLoop.submit { self.replies.expect(reply) }.get()
        try await channel.writeAndFlush(request)
        let timer = channel.eventLoop.scheduleTask(
            in: .nanoseconds(
                Int64(timeout.components.seconds) * 1_000_000_000
                    + timeout.components.attoseconds / 1_000_000_000
            )
        ) {
            reply.fail(ChannelError.connectTimeout(.seconds(0)))
        }
        defer { timer.cancel() }
        return try await reply.futureResult.get()
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Hands the first line of each reply to whoever waits for it (value blocks are not expected:
/// probes send only version, flush_all and writes).
private final class LineCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    // Touched only on the channel's event loop.
    private var waiting: EventLoopPromise<String>?
    private var buffer = ByteBuffer()

    func expect(_ promise: EventLoopPromise<String>) {
        waiting = promise
        deliver()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        deliver()
    }

    private func deliver() {
        guard let promise = waiting,
            let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n"))
        else { return }
        let length = newline - buffer.readerIndex + 1
        let line = buffer.readString(length: length) ?? ""
        waiting = nil
        promise.succeed(line.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting?.fail(ChannelError.ioOnClosedChannel)
        waiting = nil
    }
}
