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
        let replicas = proxy.liveReplicas(request.key)
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
                let required = self.proxy.configuration.consistency.required(of: replicas.count)
                var acknowledged = 1
                var failures = 0
                if acknowledged >= required { self.finish(slot, request.noreply ? nil : line.raw, failed: false) }
                for replica in replicas.dropFirst() {
                    self.send(set, to: replica, expecting: .line, retries: 2) { result in
                        if case .success(let reply) = result, !reply.isServerFailure {
                            acknowledged += 1
                        } else {
                            failures += 1
                            self.proxy.health.addHint(replica, key: request.key)
                        }
                        guard !self.isDone(slot) else { return }
                        if acknowledged >= required {
                            self.finish(slot, request.noreply ? nil : line.raw, failed: false)
                        } else if failures > replicas.count - required {
                            self.proxy.counters.add(.replicationFailures)
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
        let live = proxy.liveReplicas(key)
        for home in proxy.homeReplicas(key) where !proxy.health.isLive(home) {
            proxy.health.addHint(home, key: key)
            proxy.counters.add(.hintsQueued)
        }
        guard !live.isEmpty else {
            finish(slot, noreply ? nil : lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        let gather = WriteGather(
            required: proxy.configuration.consistency.required(of: live.count),
            total: live.count,
            primary: live[0],
            slot: slot,
            key: key,
            request: request,
            expected: expected,
            quiet: quiet
        )
        if noreply { finish(slot, nil) }
        for replica in live {
            sendWrite(gather, to: replica, retries: 2)
        }
    }

    /// Sends one replica's copy of a replicated write.
    func sendWrite(_ gather: WriteGather, to replica: Int, retries: Int) {
        let request = gather.request
        shards.links[replica].call(
            expecting: gather.expected,
            callback: .write(self, gather, replica: replica, retries: retries)
        ) { $0.writeImmutableBuffer(request) }
    }

    /// One replica's answer to a replicated write. Transport failures (not replies) are retried
    /// up to `retries` times, as `send` does.
    func writeAnswered(
        _ gather: WriteGather,
        replica: Int,
        retries: Int,
        _ result: Result<ShardReply, ShardFailure>
    ) {
        if case .failure(let failure) = result, retries > 0, failure != .down, failure != .overloaded {
            sendWrite(gather, to: replica, retries: retries - 1)
            return
        }
        switch result {
        case .success(let reply) where !reply.isServerFailure:
            gather.acknowledge(replica, reply)
        case .success, .failure:
            gather.failures += 1
            // Retries are spent: the replica may have missed the write; the supervisor
            // copies the key's current value to it once it answers again.
            proxy.health.addHint(replica, key: gather.key)
        }
        guard !gather.replied, !isDone(gather.slot) else { return }
        if let reply = gather.decided {
            gather.replied = true
            let suppressed = gather.quiet?(reply) ?? false
            finish(gather.slot, suppressed ? nil : reply.raw, failed: reply.isFailure)
        } else if gather.failures > gather.total - gather.required {
            gather.replied = true
            proxy.counters.add(.replicationFailures)
            let line =
                "SERVER_ERROR replication failed: \(gather.failures) of \(gather.total) replicas failed, "
                + "\(gather.required) must acknowledge"
            finish(gather.slot, lineBuffer(line), failed: true)
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
        let live = (0..<proxy.health.count).filter { proxy.health.isLive($0) }
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

/// One replicated write: the request sent to every replica, and their acknowledgements.
final class WriteGather {
    let required: Int
    let total: Int
    let primary: Int
    let slot: ReplySlot
    let key: ByteBuffer
    /// The bytes sent to every replica (and again on a retry).
    let request: ByteBuffer
    let expected: ExpectedReply
    /// Whether the decided reply is withheld from the client (the meta `q` flag).
    let quiet: ((ShardReply) -> Bool)?
    var acknowledged = 0
    var failures = 0
    var replied = false
    private var primaryReply: ShardReply?
    private var firstReply: ShardReply?

    init(
        required: Int,
        total: Int,
        primary: Int,
        slot: ReplySlot,
        key: ByteBuffer,
        request: ByteBuffer,
        expected: ExpectedReply,
        quiet: ((ShardReply) -> Bool)?
    ) {
        self.required = required
        self.total = total
        self.primary = primary
        self.slot = slot
        self.key = key
        self.request = request
        self.expected = expected
        self.quiet = quiet
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
