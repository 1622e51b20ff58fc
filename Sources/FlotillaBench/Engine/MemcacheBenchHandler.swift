import NIOCore

/// The bytes of the memcache workload that never change: built once per loop.
struct MemcacheWorkload {
    let getRatio: Double
    let multiget: Int
    /// ` 0 0 <value-size>\r\n`, after a set's key.
    let setSuffix: [UInt8]
    /// The value and its `\r\n`.
    let valueLine: [UInt8]

    init(plan: BenchPlan) {
        self.getRatio = plan.getRatio
        self.multiget = plan.multiget
        self.setSuffix = Array(" 0 0 \(plan.valueSize)\r\n".utf8)
        // A recognisable, compressible-looking but not constant value.
        var value = [UInt8](repeating: 0, count: plan.valueSize + 2)
        for index in 0..<plan.valueSize { value[index] = UInt8(ascii: "a") + UInt8(index % 26) }
        value[plan.valueSize] = UInt8(ascii: "\r")
        value[plan.valueSize + 1] = UInt8(ascii: "\n")
        self.valueLine = value
    }
}

/// Writes `bench:000…N` keys of a fixed width without building strings.
struct KeyFormatter {
    private var scratch: [UInt8]
    private let digitsStart: Int

    init(keySize: Int) {
        let prefix = Array(BenchPlan.keyPrefix.utf8)
        self.digitsStart = prefix.count
        self.scratch = prefix + [UInt8](repeating: UInt8(ascii: "0"), count: max(keySize - prefix.count, 1))
    }

    mutating func write(_ index: Int, into buffer: inout ByteBuffer) {
        var value = index
        var position = scratch.count - 1
        while position >= digitsStart {
            scratch[position] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
            position -= 1
        }
        buffer.writeBytes(scratch)
    }
}

/// One connection to a memcached-protocol target: writes gets and sets, reads their replies.
final class MemcacheBenchHandler: ChannelInboundHandler, BenchConnection {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let driver: LoopDriver
    private let slot: ConnectionSlot
    private let workload: MemcacheWorkload
    private var context: ChannelHandlerContext?
    private var parser = MemcacheReplyParser()
    /// A reply line split across reads.
    private var leftover: ByteBuffer?
    /// Requests written since the last flush; its storage is reused once the socket took it.
    private var outbound = ByteBuffer()
    private var unflushed = false
    /// VALUE lines seen for the get being answered.
    private var hits = 0
    private var closing = false

    init(driver: LoopDriver, slot: ConnectionSlot) {
        self.driver = driver
        self.slot = slot
        self.workload = driver.memcache!
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbound = context.channel.allocator.buffer(capacity: 1024)
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
        var buffer = unwrapInboundIn(data)
        if var previous = leftover {
            previous.writeBuffer(&buffer)
            buffer = previous
            leftover = nil
        }
        // Everything in one read arrived at the same moment.
        let now = NIODeadline.now().uptimeNanoseconds
        while let reply = parser.next(&buffer) {
            switch reply {
            case .value:
                hits += 1
            case .end:
                let found = hits
                hits = 0
                driver.complete(slot, via: self, now: now, failure: nil, hits: found)
            case .stored:
                driver.complete(slot, via: self, now: now, failure: nil)
            case .failure(let kind):
                hits = 0
                driver.complete(slot, via: self, now: now, failure: kind)
            case .malformed:
                driver.protocolError(slot)
                return
            }
            if closing { return }
        }
        if buffer.readableBytes > 0 { leftover = buffer }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close()
    }

    // MARK: BenchConnection

    var acceptsRequests: Bool { !closing }

    func writeRequest(start: UInt64, now: UInt64) -> PendingRequest {
        unflushed = true
        let isGet = workload.getRatio >= 1 || (workload.getRatio > 0 && driver.random.nextUnit() < workload.getRatio)
        var keys: Int32 = 0
        if isGet {
            outbound.writeStaticString("get ")
            for index in 0..<workload.multiget {
                if index > 0 { outbound.writeInteger(UInt8(ascii: " ")) }
                driver.keyFormatter.write(driver.sampler.next(&driver.random), into: &outbound)
            }
            outbound.writeStaticString("\r\n")
            keys = Int32(workload.multiget)
        } else {
            writeSet(key: driver.sampler.next(&driver.random))
        }
        return PendingRequest(start: start, sent: now, keys: keys, user: -1)
    }

    func writePrefill(key index: Int, now: UInt64) -> PendingRequest {
        unflushed = true
        writeSet(key: index)
        return PendingRequest(start: now, sent: now, keys: 0, user: -1)
    }

    func flush() {
        guard unflushed, let context else { return }
        unflushed = false
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        // Usually written at once: the storage is ours again and is reused without copying.
        outbound.clear()
    }

    func close() {
        guard !closing else { return }
        closing = true
        unflushed = false
        context?.close(promise: nil)
    }

    private func writeSet(key: Int) {
        outbound.writeStaticString("set ")
        driver.keyFormatter.write(key, into: &outbound)
        outbound.writeBytes(workload.setSuffix)
        outbound.writeBytes(workload.valueLine)
    }
}
