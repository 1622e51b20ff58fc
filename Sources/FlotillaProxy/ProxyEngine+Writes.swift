import FlotillaCore
import FlotillaMemcache
import NIOCore

/// Writes: every replica, acknowledged per --consistency; cas on the primary.
extension ProxyConnectionHandler {
    // MARK: Writes

    func store(_ request: StorageRequest) {
        var bytes = ByteBuffer()
        MemcacheForwarding.writeStorage(request, into: &bytes)
        guard request.mode == .cas else {
            replicate(key: request.key, request: bytes, operation: request.operation, noreply: request.noreply)
            return
        }
        // A CAS unique is the primary's: compare-and-swap there, then copy the value to the
        // other replicas as a plain set.
        let slot = openSlot(.cas)
        noteWrite(request.key)
        let replicas = context.liveReplicas(request.key)
        guard let primary = replicas.first else {
            finish(slot, request.noreply ? nil : lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        // The copies must reach the other replicas before this client's later requests do: a
        // pipelined `delete` sent on at once would overtake the copy and leave it behind.
        holdPipeline()
        shards.links[primary].call(bytes, expecting: .line) { result in
            defer { self.releasePipeline() }
            switch result {
            case .success(.line(let line)):
                guard line.status == .stored, replicas.count > 1 else {
                    self.finish(slot, request.noreply ? nil : line.raw, failed: line.isFailure)
                    return
                }
                // Copy the swapped value to the other replicas; the primary's STORED counts as
                // the first acknowledgement of --consistency.
                var copy = request
                copy.mode = .set
                var set = ByteBuffer()
                MemcacheForwarding.writeStorage(copy, into: &set)
                let required = self.context.configuration.consistency.required(of: replicas.count)
                var acknowledged = 1
                var failures = 0
                if acknowledged >= required { self.finish(slot, request.noreply ? nil : line.raw, failed: false) }
                for replica in replicas.dropFirst() {
                    self.send(set, to: replica, expecting: .line, retries: 2) { result in
                        if case .success(let reply) = result, !reply.isServerFailure {
                            acknowledged += 1
                        } else {
                            failures += 1
                            self.context.health.addHint(replica, key: request.key)
                        }
                        guard !self.isDone(slot) else { return }
                        if acknowledged >= required {
                            self.finish(slot, request.noreply ? nil : line.raw, failed: false)
                        } else if failures > replicas.count - required {
                            self.context.counters.add(.replicationFailures)
                            let message = "SERVER_ERROR replication failed: the swap was stored on the primary only"
                            self.finish(slot, request.noreply ? nil : self.lineBuffer(message), failed: true)
                        }
                    }
                }
            case .success:
                self.finish(
                    slot,
                    request.noreply ? nil : self.lineBuffer("SERVER_ERROR bad reply from shard"),
                    failed: true
                )
            case .failure(let failure):
                self.finish(
                    slot,
                    request.noreply ? nil : self.lineBuffer("SERVER_ERROR \(failure.message)"),
                    failed: true
                )
            }
        }
    }

    /// Sends a write to every live replica of `key` and answers once `--consistency` is met:
    /// `all` and `quorum` wait for that many acknowledgements, `one` for the first. The reply is
    /// the primary's when it is in, else the first. Down replicas get a hint, replayed on return.
    func replicate(
        key: ByteBuffer,
        request: ByteBuffer,
        operation: MemcacheOperation,
        noreply: Bool,
        expected: ExpectedReply = .line,
        quiet: ((ShardReply) -> Bool)? = nil
    ) {
        let slot = openSlot(operation)
        noteWrite(key)
        let live = context.liveReplicas(key)
        for home in context.homeReplicas(key) where !context.health.isLive(home) {
            context.health.addHint(home, key: key)
            context.counters.add(.hintsQueued)
        }
        guard !live.isEmpty else {
            finish(slot, noreply ? nil : lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        let gather = WriteGather(
            required: context.configuration.consistency.required(of: live.count),
            total: live.count,
            primary: live[0]
        )
        if noreply { finish(slot, nil) }
        for replica in live {
            send(request, to: replica, expecting: expected, retries: 2) { result in
                switch result {
                case .success(let reply) where !reply.isServerFailure:
                    gather.acknowledge(replica, reply)
                case .success, .failure:
                    gather.failures += 1
                    // Retries are spent: the replica may have missed the write; the supervisor
                    // copies the key's current value to it once it answers again.
                    self.context.health.addHint(replica, key: key)
                }
                guard !gather.replied, !self.isDone(slot) else { return }
                if let reply = gather.decided {
                    gather.replied = true
                    let suppressed = quiet?(reply) ?? false
                    self.finish(slot, suppressed ? nil : reply.raw, failed: reply.isFailure)
                } else if gather.failures > gather.total - gather.required {
                    gather.replied = true
                    self.context.counters.add(.replicationFailures)
                    let line =
                        "SERVER_ERROR replication failed: \(gather.failures) of \(gather.total) replicas failed, "
                        + "\(gather.required) must acknowledge"
                    self.finish(slot, self.lineBuffer(line), failed: true)
                }
            }
        }
    }

    /// Sends to one shard, retrying transport failures (not replies) up to `retries` times.
    func send(
        _ request: ByteBuffer,
        to shard: Int,
        expecting expected: ExpectedReply,
        retries: Int,
        completion: @escaping ShardCompletion
    ) {
        shards.links[shard].call(request, expecting: expected) { result in
            if case .failure(let failure) = result, retries > 0, failure != .down, failure != .overloaded {
                self.send(request, to: shard, expecting: expected, retries: retries - 1, completion: completion)
            } else {
                completion(result)
            }
        }
    }

    func flushAll(delay: Int32?, noreply: Bool) {
        let slot = openSlot(.flushAll)
        var bytes = ByteBuffer()
        MemcacheForwarding.writeFlushAll(delay: delay, into: &bytes)
        let live = (0..<context.health.count).filter { context.health.isLive($0) }
        if noreply { finish(slot, nil) }
        guard !live.isEmpty else {
            finish(slot, noreply ? nil : lineBuffer("SERVER_ERROR no live shard"), failed: true)
            return
        }
        var remaining = live.count
        var failure: String?
        for shard in live {
            shards.links[shard].call(bytes, expecting: .line) { result in
                switch result {
                case .success(.line(let line)) where !line.isFailure: break
                case .success: failure = "bad reply from shard"
                case .failure(let error): failure = error.message
                }
                remaining -= 1
                if remaining == 0 {
                    if let failure {
                        self.finish(
                            slot,
                            self.lineBuffer("SERVER_ERROR flush_all incomplete: \(failure)"),
                            failed: true
                        )
                    } else {
                        self.finish(slot, self.lineBuffer("OK"), failed: false)
                    }
                }
            }
        }
    }
}

/// Acknowledgements of one replicated write.
final class WriteGather {
    let required: Int
    let total: Int
    let primary: Int
    var acknowledged = 0
    var failures = 0
    var replied = false
    private var primaryReply: ShardReply?
    private var firstReply: ShardReply?

    init(required: Int, total: Int, primary: Int) {
        self.required = required
        self.total = total
        self.primary = primary
    }

    func acknowledge(_ replica: Int, _ reply: ShardReply) {
        acknowledged += 1
        if replica == primary { primaryReply = reply }
        if firstReply == nil { firstReply = reply }
    }

    /// The reply to send, once enough replicas acknowledged.
    var decided: ShardReply? {
        guard acknowledged >= required else { return nil }
        return primaryReply ?? firstReply
    }
}
