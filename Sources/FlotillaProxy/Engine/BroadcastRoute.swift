import FlotillaMemcache
import FlotillaServer
import NIOCore

/// flush_all and `stats cachedump`: every live shard; one answer once all have answered.
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
        let state = BroadcastState(slot: slot, remaining: live.count, dumpsItems: false)
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
        case .success(.line(let line)) where !line.isFailure && !state.dumpsItems: break
        case .success(.stats(let lines)) where state.dumpsItems:
            for (name, value) in lines where name == "ITEM" {
                let key = String(value.prefix { $0 != " " })
                if state.listed.insert(key).inserted { state.items.append(value) }
            }
        case .success: state.failure = "bad reply from shard"
        case .failure(let error): state.failure = error.message
        }
        state.remaining -= 1
        guard state.remaining == 0 else { return }
        if state.dumpsItems {
            actions.append(.reply(state.slot, Self.itemList(state.items), failed: false))
        } else if let failure = state.failure {
            actions.append(Self.serverError(state.slot, "flush_all incomplete: \(failure)"))
        } else {
            actions.append(.reply(state.slot, Self.line("OK"), failed: false))
        }
    }
}

/// A flush_all or a `stats cachedump` waiting for its shards.
final class BroadcastState {
    let slot: ReplySlot
    var remaining: Int
    /// The last shard's failure, if any failed.
    var failure: String?
    /// A `stats cachedump`: the shards' `ITEM` lines, each key once (its replicas list it too).
    let dumpsItems: Bool
    var items: [String] = []
    var listed: Set<String> = []

    init(slot: ReplySlot, remaining: Int, dumpsItems: Bool) {
        self.slot = slot
        self.remaining = remaining
        self.dumpsItems = dumpsItems
    }
}

extension ProxyEngine {
    /// `stats cachedump <class> <limit>` (what `memcdump` sends for each class): the `ITEM` lines of
    /// every live shard, each key once. A shard that fails is left out, as a missing shard is from
    /// any key listing; arguments are checked here as `flotilla cache` checks them.
    func cachedump(_ arguments: [String], _ client: inout ClientPipeline, _ actions: inout ProxyActions) {
        let slot = open(.stats, &client)
        guard arguments.count == 3, let slabClass = UInt32(arguments[1]), UInt32(arguments[2]) != nil else {
            actions.append(.reply(slot, Self.line("CLIENT_ERROR bad command line"), failed: true))
            return
        }
        guard slabClass <= SlabClasses.largestClass else {
            actions.append(.reply(slot, Self.line("CLIENT_ERROR Illegal slab id"), failed: true))
            return
        }
        let live = (0..<proxy.health.count).filter { proxy.health.isReadable($0) }
        guard !live.isEmpty else {
            actions.append(.reply(slot, Self.line("END"), failed: false))
            return
        }
        var bytes = ByteBuffer()
        bytes.writeString("stats " + arguments.joined(separator: " ") + "\r\n")
        let state = BroadcastState(slot: slot, remaining: live.count, dumpsItems: true)
        for shard in live {
            actions.append(.send(shard: shard, .bytes(bytes), expecting: .stats, then: .broadcast(state)))
        }
    }

    static func itemList(_ items: [String]) -> ByteBuffer {
        var reply = ByteBuffer()
        for item in items {
            reply.writeStaticString("ITEM ")
            reply.writeString(item)
            reply.writeStaticString("\r\n")
        }
        reply.writeStaticString("END\r\n")
        return reply
    }
}
