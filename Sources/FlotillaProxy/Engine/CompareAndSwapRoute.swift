import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore

/// `cas`, and ms/md/ma with `C<cas>`: a CAS unique is the primary's, so the primary compares and
/// swaps; on success the same write without the comparison goes to the other replicas. The
/// client's later requests wait until those copies are sent (a pipelined `delete` sent on at once
/// would overtake the copy and leave it behind).
extension ProxyEngine {
    /// `cas`: the primary's STORED counts as the first acknowledgement of --consistency; the
    /// copies (plain sets) give the others.
    func compareAndSwap(
        _ request: StorageRequest,
        bytes: ByteBuffer,
        _ client: inout ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        var copy = request
        copy.mode = .set
        var set = ByteBuffer()
        MemcacheForwarding.writeStorage(copy, into: &set)
        startSwap(
            key: request.key,
            operation: .cas,
            swap: bytes,
            copy: set,
            expected: .line,
            kind: .storage(noreply: request.noreply),
            &client,
            &actions
        )
    }

    /// ms/md/ma with `C<cas>`: the primary's reply is the answer; the copies are best effort,
    /// with a hint for a replica that missed one.
    func compareAndSwapMeta(
        _ request: MetaRequest,
        bytes: ByteBuffer,
        quiet: ((ShardReply) -> Bool)?,
        _ client: inout ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        var unconditional = request
        unconditional.tokens.removeAll { $0.flag == UInt8(ascii: "C") }
        unconditional.flags.compareCAS = nil
        var copy = ByteBuffer()
        MemcacheForwarding.writeMeta(unconditional, into: &copy)
        startSwap(
            key: request.key,
            operation: request.operation,
            swap: bytes,
            copy: copy,
            expected: .meta,
            kind: .meta(quiet: quiet),
            &client,
            &actions
        )
    }

    private func startSwap(
        key: ByteBuffer,
        operation: MemcacheOperation,
        swap: ByteBuffer,
        copy: ByteBuffer,
        expected: ExpectedReply,
        kind: SwapState.Kind,
        _ client: inout ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        let slot = open(operation, &client)
        client.noteWrite(key)
        let replicas = proxy.liveReplicas(key)
        guard let primary = replicas.first else {
            actions.append(Self.serverError(slot, "no live shard for the key", noreply: kind.noreply))
            return
        }
        client.hold()
        let state = SwapState(
            kind: kind,
            slot: slot,
            key: key,
            replicas: replicas,
            copy: copy,
            expected: expected,
            required: proxy.configuration.consistency.required(of: replicas.count)
        )
        actions.append(.send(shard: primary, .bytes(swap), expecting: expected, then: .swap(state)))
    }

    /// The primary's answer: the copies go out, then the client's held requests.
    func swapAnswered(_ state: SwapState, _ result: Result<ShardReply, ShardFailure>, _ actions: inout ProxyActions) {
        defer { actions.append(.release) }
        switch state.kind {
        case .storage(let noreply):
            guard case .success(.line(let line)) = result else {
                if case .failure(let failure) = result {
                    actions.append(Self.serverError(state.slot, failure.message, noreply: noreply))
                } else {
                    actions.append(Self.serverError(state.slot, "bad reply from shard", noreply: noreply))
                }
                return
            }
            guard line.status == .stored, state.replicas.count > 1 else {
                actions.append(.reply(state.slot, noreply ? nil : line.raw, failed: line.isFailure))
                return
            }
            state.primaryReply = line.raw
            if state.acknowledged >= state.required {
                state.replied = true
                actions.append(.reply(state.slot, noreply ? nil : line.raw, failed: false))
            }
            sendCopies(state, &actions)
        case .meta(let quiet):
            guard case .success(let reply) = result else {
                actions.append(Self.forwarded(state.slot, result))
                return
            }
            if let code = reply.metaCode, code == "HD" || code == "VA" {
                sendCopies(state, &actions)
            }
            let hidden = quiet?(reply) ?? false
            actions.append(.reply(state.slot, hidden ? nil : reply.raw, failed: reply.isFailure))
        }
    }

    private func sendCopies(_ state: SwapState, _ actions: inout ProxyActions) {
        for replica in state.replicas.dropFirst() {
            actions.append(
                .send(
                    shard: replica,
                    .bytes(state.copy),
                    expecting: state.expected,
                    then: .swapCopy(state, replica: replica, retries: Self.writeRetries)
                )
            )
        }
    }

    /// Another replica's answer to the copy of a swapped value.
    func swapCopyAnswered(
        _ state: SwapState,
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
                    .bytes(state.copy),
                    expecting: state.expected,
                    then: .swapCopy(state, replica: replica, retries: retries - 1)
                )
            )
            return
        }
        guard case .storage(let noreply) = state.kind else {
            // A meta swap has answered already: a copy that did not arrive leaves a hint.
            if case .failure = result { proxy.health.addHint(replica, key: state.key) }
            return
        }
        if case .success(let reply) = result, !reply.isServerFailure {
            state.acknowledged += 1
        } else {
            state.failures += 1
            proxy.health.addHint(replica, key: state.key)
        }
        guard !state.replied, !client.isDone(state.slot) else { return }
        if state.acknowledged >= state.required {
            state.replied = true
            actions.append(.reply(state.slot, noreply ? nil : state.primaryReply, failed: false))
        } else if state.failures > state.replicas.count - state.required {
            state.replied = true
            proxy.counters.add(.replicationFailures)
            let message = "replication failed: the swap was stored on the primary only"
            actions.append(Self.serverError(state.slot, message, noreply: noreply))
        }
    }
}

/// A compare-and-swap: the primary's answer, then the copies' acknowledgements.
final class SwapState {
    enum Kind {
        /// `cas`: the reply waits for --consistency.
        case storage(noreply: Bool)
        /// ms/md/ma with `C`: the primary's reply is the answer, hidden by `quiet` when it says so.
        case meta(quiet: ((ShardReply) -> Bool)?)

        var noreply: Bool {
            if case .storage(let noreply) = self { return noreply }
            return false
        }
    }

    let kind: Kind
    let slot: ReplySlot
    let key: ByteBuffer
    /// The live replicas, the primary first.
    let replicas: ReplicaSet
    /// The write without the comparison, for the other replicas.
    let copy: ByteBuffer
    let expected: ExpectedReply
    let required: Int
    /// The primary's STORED counts as the first.
    var acknowledged = 1
    var failures = 0
    var replied = false
    var primaryReply: ByteBuffer?

    init(
        kind: Kind,
        slot: ReplySlot,
        key: ByteBuffer,
        replicas: ReplicaSet,
        copy: ByteBuffer,
        expected: ExpectedReply,
        required: Int
    ) {
        self.kind = kind
        self.slot = slot
        self.key = key
        self.replicas = replicas
        self.copy = copy
        self.expected = expected
        self.required = required
    }
}
