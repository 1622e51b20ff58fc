import FlotillaMemcache
import FlotillaServer
import NIOCore

/// flush_all: every live shard; `OK` once all have flushed.
extension ProxyEngine {
    func flushAll(delay: Int32?, noreply: Bool, _ client: inout ClientPipeline, _ actions: inout ProxyActions) {
        let slot = open(.flushAll, &client)
        var bytes = ByteBuffer()
        MemcacheForwarding.writeFlushAll(delay: delay, into: &bytes)
        let live = (0..<proxy.health.count).filter { proxy.health.isLive($0) }
        if noreply { actions.append(.reply(slot, nil, failed: false)) }
        guard !live.isEmpty else {
            actions.append(Self.serverError(slot, "no live shard", noreply: noreply))
            return
        }
        let state = BroadcastState(slot: slot, remaining: live.count)
        for shard in live {
            actions.append(.send(shard: shard, .bytes(bytes), expecting: .line, then: .broadcast(state)))
        }
    }

    func broadcastAnswered(
        _ state: BroadcastState,
        _ result: Result<ShardReply, ShardFailure>,
        _ actions: inout ProxyActions
    ) {
        switch result {
        case .success(.line(let line)) where !line.isFailure: break
        case .success: state.failure = "bad reply from shard"
        case .failure(let error): state.failure = error.message
        }
        state.remaining -= 1
        guard state.remaining == 0 else { return }
        if let failure = state.failure {
            actions.append(Self.serverError(state.slot, "flush_all incomplete: \(failure)"))
        } else {
            actions.append(.reply(state.slot, Self.line("OK"), failed: false))
        }
    }
}

/// A flush_all waiting for its shards.
final class BroadcastState {
    let slot: ReplySlot
    var remaining: Int
    /// The last shard's failure, if any failed.
    var failure: String?

    init(slot: ReplySlot, remaining: Int) {
        self.slot = slot
        self.remaining = remaining
    }
}
