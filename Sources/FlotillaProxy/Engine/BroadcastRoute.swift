import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore

/// flush_all, `stats cachedump` and the `stats` groups: every live shard; one answer once all
/// have answered.
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
        let state = BroadcastState(slot: slot, remaining: live.count, gathering: .confirmation("OK", of: "flush_all"))
        for shard in live {
            actions.append(.send(shard: shard, .bytes(bytes), expecting: .line, then: .broadcast(state)))
        }
    }

    func broadcastAnswered(
        _ state: BroadcastState,
        _ result: Result<ShardReply, ShardFailure>,
        _ actions: inout ProxyActions
    ) {
        switch (result, state.gathering) {
        case (.success(.line(let line)), .confirmation) where !line.isFailure:
            break
        case (.success(.stats(let lines)), .items):
            for (name, value) in lines where name == "ITEM" {
                let key = String(value.prefix { $0 != " " })
                if state.listed.insert(key).inserted { state.items.append(value) }
            }
        case (.success(.stats(let lines)), .merge):
            state.merge.add(lines)
        case (.success, _): state.failure = "bad reply from shard"
        case (.failure(let error), _): state.failure = error.message
        }
        state.remaining -= 1
        guard state.remaining == 0 else { return }
        switch state.gathering {
        case .items:
            actions.append(.reply(state.slot, Self.itemList(state.items), failed: false))
        case .merge:
            // A group is what the shards that answered report: one that failed is left out.
            actions.append(.reply(state.slot, Self.statLines(state.merge.lines), failed: false))
        case .confirmation(_, let command) where state.failure != nil:
            actions.append(Self.serverError(state.slot, "\(command) incomplete: \(state.failure!)"))
        case .confirmation(let reply, _):
            actions.append(.reply(state.slot, Self.line(reply), failed: false))
        }
    }
}

/// A command sent to every live shard, waiting for their answers.
final class BroadcastState {
    /// What is made of the answers.
    enum Gathering {
        /// Every shard must answer `reply` (flush_all's `OK`, `stats reset`'s `RESET`); else
        /// `SERVER_ERROR <command> incomplete`.
        case confirmation(String, of: String)
        /// `stats cachedump`: the shards' `ITEM` lines, each key once (its replicas list it too).
        case items
        /// A `stats` group, merged (`StatsMerge`).
        case merge
    }

    let slot: ReplySlot
    var remaining: Int
    let gathering: Gathering
    /// The last shard's failure, if any failed.
    var failure: String?
    var items: [String] = []
    var listed: Set<String> = []
    var merge: StatsMerge

    init(slot: ReplySlot, remaining: Int, gathering: Gathering, merge: StatsMerge = StatsMerge(.sumCounts)) {
        self.slot = slot
        self.remaining = remaining
        self.gathering = gathering
        self.merge = merge
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
        let state = BroadcastState(slot: slot, remaining: live.count, gathering: .items)
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

extension ProxyEngine {
    /// `stats <group>`: memcached's groups, answered for the shards behind the proxy. Counts of
    /// `items` and `slabs` (and `sizes`) are added up over the live shards, `settings` are the
    /// first shard's with `maxbytes` added up, `detail dump` adds up each prefix's counts;
    /// `reset` and `detail on|off` go to every live shard. `conns` lists the proxy's listener
    /// (the shards' connections are the proxy's own links). Another group gets `ERROR`, as
    /// memcached answers it.
    func statsGroup(_ arguments: [String], _ client: inout ClientPipeline, _ actions: inout ProxyActions) {
        let slot = open(.stats, &client)
        let group = arguments[0]
        let gathering: BroadcastState.Gathering
        let merge: StatsMerge
        let expected: ExpectedReply
        switch (group, arguments.count > 1 ? arguments[1] : nil) {
        case ("items", _), ("slabs", _), ("sizes", _):
            (gathering, merge, expected) = (.merge, StatsMerge(.sumCounts), .stats)
        case ("settings", _):
            (gathering, merge, expected) = (.merge, StatsMerge(.firstExcept(summed: ["maxbytes"])), .stats)
        case ("reset", _):
            (gathering, merge, expected) = (.confirmation("RESET", of: "stats reset"), StatsMerge(.sumCounts), .line)
        case ("detail", "on"), ("detail", "off"):
            (gathering, merge, expected) = (.confirmation("OK", of: "stats detail"), StatsMerge(.sumCounts), .line)
        case ("detail", "dump"):
            (gathering, merge, expected) = (.merge, StatsMerge(.prefixes), .stats)
        case ("detail", _):
            actions.append(.reply(slot, Self.line("CLIENT_ERROR usage: stats detail on|off|dump"), failed: true))
            return
        case ("conns", _):
            let listener = "tcp:\(proxy.configuration.listen.host):\(proxy.configuration.listen.port)"
            let uptime = (ContinuousClock.now - proxy.startedAt).components.seconds
            let lines = [("0:addr", listener), ("0:state", "conn_listening"), ("0:secs_since_last_cmd", "\(uptime)")]
            actions.append(.reply(slot, Self.statLines(lines), failed: false))
            return
        default:
            actions.append(.reply(slot, Self.line("ERROR"), failed: true))
            return
        }
        let live = (0..<proxy.health.count).filter { proxy.health.isLive($0) }
        guard !live.isEmpty else {
            actions.append(Self.serverError(slot, "no live shard"))
            return
        }
        var bytes = ByteBuffer()
        bytes.writeString("stats " + arguments.joined(separator: " ") + "\r\n")
        let state = BroadcastState(slot: slot, remaining: live.count, gathering: gathering, merge: merge)
        for shard in live {
            actions.append(.send(shard: shard, .bytes(bytes), expecting: expected, then: .broadcast(state)))
        }
    }

    /// `STAT` lines (`PREFIX` lines as they are), then `END`.
    static func statLines(_ lines: [(name: String, value: String)]) -> ByteBuffer {
        var reply = ByteBuffer()
        for (name, value) in lines {
            reply.writeString(name == "PREFIX" ? "PREFIX \(value)\r\n" : "STAT \(name) \(value)\r\n")
        }
        reply.writeStaticString("END\r\n")
        return reply
    }
}
