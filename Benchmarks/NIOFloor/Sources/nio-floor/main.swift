// nio-floor PORT: a memcached text-protocol server that does the least SwiftNIO allows.
//
// Every `get KEY` is a hit with the same 100-byte value, every `set` is answered STORED and
// stored nowhere, `version` answers; anything else is ERROR. Requests are parsed in place (one
// memchr per line, no allocation), and the replies of one read leave in one write, on one event
// loop with the socket options `flotilla cache` uses. What it costs per request is what SwiftNIO's
// channel pipeline costs: the floor under any SwiftNIO memcached server (scripts/bench-floor.sh).
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class FloorHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Line {
        case get(keyStart: Int, keyEnd: Int)
        case set(bytes: Int)
        case version
        case other
    }

    private static let value = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
    private var inbound: ByteBuffer?
    private var outbound = ByteBuffer()
    /// Bytes of a set's data block (and its CRLF) still to skip.
    private var skip = 0

    func handlerAdded(context: ChannelHandlerContext) {
        outbound = context.channel.allocator.buffer(capacity: 4096)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if inbound == nil { inbound = bytes } else { inbound!.writeBuffer(&bytes) }
        while true {
            if skip > 0 {
                let n = min(skip, inbound!.readableBytes)
                inbound!.moveReaderIndex(forwardBy: n)
                skip -= n
                if skip > 0 { break }
                outbound.writeStaticString("STORED\r\n")
            }
            guard let (line, length) = inbound!.withUnsafeReadableBytes(Self.parse) else { break }
            switch line {
            case .get(let keyStart, let keyEnd):
                outbound.writeStaticString("VALUE ")
                let key = inbound!.getSlice(at: inbound!.readerIndex + keyStart, length: keyEnd - keyStart)!
                outbound.writeImmutableBuffer(key)
                outbound.writeStaticString(" 0 100\r\n")
                outbound.writeBytes(Self.value)
                outbound.writeStaticString("\r\nEND\r\n")
            case .set(let count): skip = count + 2
            case .version: outbound.writeStaticString("VERSION nio-floor\r\n")
            case .other: outbound.writeStaticString("ERROR\r\n")
            }
            inbound!.moveReaderIndex(forwardBy: length)
        }
        if inbound!.readableBytes == 0 { inbound = nil }
    }

    /// The first complete line: what it asks and its length with the newline, or nil.
    private static func parse(_ raw: UnsafeRawBufferPointer) -> (Line, Int)? {
        guard let base = raw.baseAddress, let found = memchr(base, 0x0A, raw.count) else { return nil }
        let newline = UnsafeRawPointer(found) - base
        let bytes = raw.bindMemory(to: UInt8.self)
        var key = (0, 0)
        var count = (0, 0)
        var word = 0
        var i = 0
        while i < newline {
            while i < newline, bytes[i] == 0x20 { i += 1 }
            let start = i
            while i < newline, bytes[i] != 0x20, bytes[i] != 0x0D { i += 1 }
            if i == start { break }
            word += 1
            if word == 2 { key = (start, i) }
            if word == 5 { count = (start, i) }
        }
        switch newline > 0 ? bytes[0] : 0 {
        case UInt8(ascii: "g"): return (.get(keyStart: key.0, keyEnd: key.1), newline + 1)
        case UInt8(ascii: "s"):
            var n = 0
            for j in count.0..<count.1 { n = n * 10 + Int(bytes[j] &- 48) }
            return (.set(bytes: n), newline + 1)
        case UInt8(ascii: "v"): return (.version, newline + 1)
        default: return (.other, newline + 1)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard outbound.readableBytes > 0 else { return }
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        outbound.clear()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

guard CommandLine.arguments.count == 2, let port = Int(CommandLine.arguments[1]) else {
    print("usage: nio-floor PORT   (listens on 127.0.0.1:PORT, one event loop)")
    exit(2)
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.maxMessagesPerRead, value: 16)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(FloorHandler())
        }
    }
    .bind(host: "127.0.0.1", port: port).wait()
print("nio-floor listening on 127.0.0.1:\(port)")
try channel.closeFuture.wait()
