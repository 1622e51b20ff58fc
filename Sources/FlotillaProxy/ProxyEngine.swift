import FlotillaCore
import FlotillaMemcache
import Foundation
import NIOCore

/// What the proxy does with each command: reads go to one replica with fallback, writes to every
/// replica with the configured consistency, and the rest is answered by the proxy itself.
extension ProxyConnectionHandler {
    func execute(_ request: MemcacheRequest) {
        switch request {
        case .retrieval(let retrieval):
            retrieve(retrieval)
        case .storage(let storage):
            store(storage)
        case .delete(let key, let noreply):
            var bytes = ByteBuffer()
            MemcacheForwarding.writeDelete(key: key, into: &bytes)
            replicate(key: key, request: bytes, operation: .delete, noreply: noreply)
        case .arithmetic(let arithmetic):
            var bytes = ByteBuffer()
            MemcacheForwarding.writeArithmetic(arithmetic, into: &bytes)
            replicate(
                key: arithmetic.key,
                request: bytes,
                operation: arithmetic.increment ? .incr : .decr,
                noreply: arithmetic.noreply
            )
        case .touch(let key, let exptime, let noreply):
            var bytes = ByteBuffer()
            MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &bytes)
            replicate(key: key, request: bytes, operation: .touch, noreply: noreply)
        case .flushAll(let delay, let noreply):
            flushAll(delay: delay, noreply: noreply)
        case .version:
            let slot = openSlot(.version)
            finish(slot, line: "VERSION \(proxy.version)", failed: false)
        case .verbosity(let noreply):
            let slot = openSlot(.verbosity)
            if noreply { finish(slot, nil) } else { finish(slot, line: "OK", failed: false) }
        case .stats(let arguments):
            let slot = openSlot(.stats)
            finish(slot, statsReply(arguments), failed: false)
        case .quit:
            closeWhenReplied()
        case .meta(let meta):
            executeMeta(meta)
        case .tooLarge(let operation, let key, let noreply, let dropsCurrentValue):
            let slot = openSlot(operation)
            if dropsCurrentValue {
                // As memcached: a failed plain set must not leave the old value behind.
                var bytes = ByteBuffer()
                MemcacheForwarding.writeDelete(key: key, into: &bytes)
                replicate(key: key, request: bytes, operation: .delete, noreply: true)
            }
            if noreply {
                finish(slot, nil, failed: true)
            } else {
                finish(slot, line: "SERVER_ERROR object too large for cache")
            }
        case .reply(let reply):
            let slot = openSlot(reply.operation)
            if reply.suppressed {
                finish(slot, nil, failed: reply.isError)
            } else {
                var bytes = ByteBuffer()
                bytes.writeMemcacheLine(reply.message)
                finish(slot, bytes, failed: reply.isError)
            }
        case .close:
            closeWhenReplied()
        }
    }
    // MARK: Stats

    func statsReply(_ arguments: [String]) -> ByteBuffer {
        var reply = ByteBuffer()
        guard arguments.isEmpty else {
            // Sub-statistics (items, slabs, settings …) belong to each shard: ask them directly.
            reply.writeStaticString("END\r\n")
            return reply
        }
        let health = proxy.health.snapshot()
        let uptime = ContinuousClock.now - proxy.startedAt
        var lines: [(String, String)] = [
            ("pid", "\(getpid())"),
            ("uptime", "\(uptime.components.seconds)"),
            ("version", proxy.version),
            ("shards", "\(health.count)"),
            ("shards_down", "\(health.filter(\.down).count)"),
            ("replicas", "\(proxy.configuration.replicas)"),
            ("consistency", proxy.configuration.consistency.rawValue),
            ("get_hits", "\(proxy.counters[.getHits])"),
            ("get_misses", "\(proxy.counters[.getMisses])"),
            ("fallback_reads", "\(proxy.counters[.fallbackReads])"),
            ("read_repairs", "\(proxy.counters[.readRepairs])"),
            ("replication_failures", "\(proxy.counters[.replicationFailures])"),
            ("hints_queued", "\(proxy.counters[.hintsQueued])"),
        ]
        for (index, shard) in health.enumerated() {
            let name = proxy.configuration.shards[index].address
            lines.append(("shard:\(name):state", shard.down ? "down" : shard.recovering ? "recovering" : "up"))
            lines.append(("shard:\(name):pending_hints", "\(shard.pendingHints)"))
            lines.append(("shard:\(name):hints_replayed", "\(shard.hintsReplayed)"))
            lines.append(("shard:\(name):outstanding", "\(shards.links[index].outstanding)"))
        }
        for (name, value) in lines {
            reply.writeString("STAT \(name) \(value)\r\n")
        }
        reply.writeStaticString("END\r\n")
        return reply
    }

    func lineBuffer(_ line: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString(line)
        buffer.writeStaticString("\r\n")
        return buffer
    }
}

extension ShardReply {
    /// The bytes to pass back to the client.
    var raw: ByteBuffer {
        switch self {
        case .line(let line): return line.raw
        case .meta(let meta): return meta.raw
        case .value(let value):
            var buffer = ByteBuffer()
            buffer.writeRetrievalReply(hits: value.raw)
            return buffer
        case .values(let values):
            var buffer = ByteBuffer()
            for value in values {
                var raw = value.raw
                buffer.writeBuffer(&raw)
            }
            buffer.writeStaticString("END\r\n")
            return buffer
        case .stats(let stats):
            var buffer = ByteBuffer()
            for (name, value) in stats { buffer.writeString("STAT \(name) \(value)\r\n") }
            buffer.writeStaticString("END\r\n")
            return buffer
        }
    }

    /// `SERVER_ERROR`: the shard failed, another replica may do better. (`ERROR` and
    /// `CLIENT_ERROR` blame the request, and are the answer.)
    var isServerFailure: Bool {
        if case .line(let line) = self { return line.status == .serverError }
        return false
    }

    var metaCode: String? {
        if case .meta(let meta) = self { return meta.code }
        return nil
    }
}
