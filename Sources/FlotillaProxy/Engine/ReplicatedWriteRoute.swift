import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore

/// Writes: every live replica, acknowledged per --consistency (all, quorum, one); hints for the
/// replicas that are down or missed the write.
extension ProxyEngine {
    func store(_ request: StorageRequest, _ client: inout ClientPipeline, _ actions: inout ProxyActions) {
        var bytes = ByteBuffer()
        MemcacheForwarding.writeStorage(request, into: &bytes)
        guard request.mode == .cas else {
            replicate(
                key: request.key,
                request: bytes,
                operation: request.operation,
                noreply: request.noreply,
                &client,
                &actions
            )
            return
        }
        compareAndSwap(request, bytes: bytes, &client, &actions)
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
        quiet: ((ShardReply) -> Bool)? = nil,
        _ client: inout ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        let slot = open(operation, &client)
        client.noteWrite(key)
        let live = proxy.liveReplicas(key)
        for home in proxy.homeReplicas(key) where !proxy.health.isLive(home) {
            proxy.health.addHint(home, key: key)
            proxy.counters.add(.hintsQueued)
        }
        guard !live.isEmpty else {
            actions.append(Self.serverError(slot, "no live shard for the key", noreply: noreply))
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
        if noreply { actions.append(.reply(slot, nil, failed: false)) }
        for replica in live {
            actions.append(
                .send(
                    shard: replica,
                    .bytes(request),
                    expecting: expected,
                    then: .write(gather, replica: replica, retries: Self.writeRetries)
                )
            )
        }
    }

    /// One replica's answer to a replicated write. Transport failures (not replies) are retried
    /// up to `retries` times.
    func writeAnswered(
        _ gather: WriteGather,
        replica: Int,
        retries: Int,
        _ result: Result<ShardReply, ShardFailure>,
        _ client: ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        if Self.shouldRetry(result, retries: retries) {
            actions.append(
                .send(
                    shard: replica,
                    .bytes(gather.request),
                    expecting: gather.expected,
                    then: .write(gather, replica: replica, retries: retries - 1)
                )
            )
            return
        }
        switch result {
        case .success(let reply) where !reply.isServerFailure:
            gather.acknowledge(replica, reply)
        case .success, .failure:
            gather.failures += 1
            // Retries are spent: the replica may have missed the write; the repairer copies the
            // key's current value to it once it answers again.
            proxy.health.addHint(replica, key: gather.key)
        }
        guard !gather.replied, !client.isDone(gather.slot) else { return }
        if let reply = gather.decided {
            gather.replied = true
            let suppressed = gather.quiet?(reply) ?? false
            actions.append(.reply(gather.slot, suppressed ? nil : reply.raw, failed: reply.isFailure))
        } else if gather.failures > gather.total - gather.required {
            gather.replied = true
            proxy.counters.add(.replicationFailures)
            let message =
                "replication failed: \(gather.failures) of \(gather.total) replicas failed, "
                + "\(gather.required) must acknowledge"
            actions.append(Self.serverError(gather.slot, message))
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
