import FlotillaCore
import NIOCore
import NIOPosix

/// The `stats` of a memcached-protocol server (a `flotilla cache` shard or the proxy), read over
/// one short-lived connection.
struct MemcacheStats: Sendable {
    /// A server that did not answer `stats` in time, or not in the protocol.
    struct FetchError: Error, CustomStringConvertible {
        var description: String
    }

    var values: [String: String]

    subscript(_ name: String) -> String? { values[name] }

    /// A counter; 0 when absent or not a number.
    func counter(_ name: String) -> UInt64 { values[name].flatMap { UInt64($0) } ?? 0 }

    /// Sends `stats` to 127.0.0.1:`port` and reads the `STAT name value` lines up to `END`.
    static func fetch(port: Int, timeout: Duration = .seconds(1)) async throws -> MemcacheStats {
        let nanoseconds = timeout.nanoseconds
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(nanoseconds))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        // Closing the channel ends the read below: a server that never says END cannot hold us.
        let deadline = channel.channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            channel.channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        let text = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "stats\r\n"))
            var text = ""
            for try await chunk in inbound {
                text += String(buffer: chunk)
                if text.hasSuffix("END\r\n") || text.hasPrefix("ERROR") || text.hasPrefix("SERVER_ERROR") { break }
            }
            return text
        }
        guard text.hasSuffix("END\r\n") else {
            throw FetchError(description: "no stats from 127.0.0.1:\(port) within \(timeout)")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\r\n") where line.hasPrefix("STAT ") {
            let fields = line.split(separator: " ", maxSplits: 2)
            if fields.count == 3 { values[String(fields[1])] = String(fields[2]) }
        }
        return MemcacheStats(values: values)
    }
}
