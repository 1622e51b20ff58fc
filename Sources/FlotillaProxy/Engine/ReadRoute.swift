import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore

/// Reads: one replica, the power of two choices, fallback, read repair.
extension ProxyEngine {
    /// get/gets/gat/gats: keys grouped by the replica chosen for each, one request per shard, the
    /// hits merged back in request order. A miss or a failure on one replica is retried on the
    /// next (not for gets/gats, whose CAS unique belongs to the primary: they read the primary).
    mutating func retrieve(
        _ request: RetrievalRequest,
        _ client: inout ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        // The decoder leaves a get's key lengths to whoever answers it (memcached's partial
        // replies). Never a shard: memcached answers a key over 250 bytes with CLIENT_ERROR and
        // drops the replies it had stacked, other clients' included on the connection they share.
        if request.keys.contains(where: { $0.readableBytes > MemcacheRequestDecoder.keyMaxLength }) {
            let slot = open(request.operation, &client)
            actions.append(.reply(slot, Self.line("CLIENT_ERROR bad command line format"), failed: true))
            return
        }
        if request.keys.count == 1 {
            retrieveOne(request, &client, &actions)
            return
        }
        if request.keys.count > Self.sliceKeys {
            slicing = SlicedRetrieval(request: request, start: now)
            continueSlicing(client: &client, into: &actions)
            return
        }
        let slot = open(request.operation, keys: request.keys.count, &client)
        let state = RetrievalState(request: request, slot: slot)
        for index in request.keys.indices {
            state.replicas[index] = proxy.readReplicas(request.keys[index])
        }
        retrievalRound(state, client, &actions)
    }

    /// Keys of a multi-get started at once. A larger get goes in slices of this many keys, one
    /// per turn of the event loop (`continueSlicing`) and at most `slicesInFlight` at a time, so
    /// that the client connections sharing the loop and its shard connections are served between
    /// them: a 100,000-key get held a loop for 200 ms in one piece.
    static let sliceKeys = 256
    /// Slices of one get in flight at once. Every client on an event loop shares one pipelined
    /// connection per shard: a get's slices all sent at once would queue everyone else's
    /// requests behind all of its keys at the shard, as one piece did.
    static let slicesInFlight = 2

    /// Starts the next slice of the get being sliced (while `isSlicing`, before any later
    /// request): its keys as a multi-get of their own with its own reply slot (hits only, no
    /// END), and with the last slice the slot of the final line.
    mutating func continueSlicing(client: inout ClientPipeline, into actions: inout ProxyActions) {
        guard let sliced = slicing else { return }
        let request = sliced.request
        let end = min(sliced.next + Self.sliceKeys, request.keys.count)
        var part = request
        part.keys = RetrievalKeys(Array(request.keys[sliced.next..<end]))
        let slot = client.open(request.operation, keys: end - sliced.next, now: sliced.start, records: false)
        sliced.next = end
        sliced.unfinished += 1
        if end == request.keys.count {
            sliced.final = client.open(request.operation, now: sliced.start)
            slicing = nil
        }
        let state = RetrievalState(request: part, slot: slot)
        state.slice = sliced
        for index in part.keys.indices {
            state.replicas[index] = proxy.readReplicas(part.keys[index])
        }
        retrievalRound(state, client, &actions)
    }

    /// The common case, a single key: one request, no grouping; a miss or a failure continues
    /// as a multi-key read would, on the next replica.
    mutating func retrieveOne(
        _ request: RetrievalRequest,
        _ client: inout ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        let slot = open(request.operation, keys: 1, &client)
        let key = request.keys[0]
        let replicas = proxy.readReplicas(key)
        guard !replicas.isEmpty else {
            actions.append(Self.serverError(slot, "no live shard for the key"))
            return
        }
        let target = readsPrimary(request, key, client) ? replicas[0] : chooseReplica(replicas)
        if request.touches {
            propagateTouch(key, exptime: request.exptime, to: replicas, except: target, &actions)
        }
        actions.append(
            .send(
                shard: target,
                .retrieval(request.operation, exptime: request.exptime, key: key),
                expecting: .retrievalOfOne,
                then: .readOne(ReadOne(request: request, slot: slot, replicas: replicas, target: target))
            )
        )
    }

    /// The shard's answer to `retrieveOne`.
    mutating func readOneAnswered(
        _ read: ReadOne,
        _ result: Result<ShardReply, ShardFailure>,
        _ client: ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        let request = read.request
        switch result {
        case .success(.value(let value)):
            proxy.counters.add(.getHits)
            actions.append(.replyHits(read.slot, value.raw))
            return
        case .success(.values(let values)) where !values.isEmpty:
            proxy.counters.add(.getHits)
            actions.append(.replyHits(read.slot, values[0].raw))
            return
        default:
            break
        }
        // A miss, an error or a failure: the general path takes over from here.
        let state = RetrievalState(request: request, slot: read.slot)
        state.replicas[0] = read.replicas
        state.tried[0] = [read.target]
        switch result {
        case .success(.values):
            state.answered = true
            state.missedOn[0] = [read.target]
            if !mayFallBack(request, request.keys[0], read.slot, client) { state.settled[0] = true }
        case .success(let reply):
            if reply.blamesRequest {
                state.clientError = reply.raw
                state.settled[0] = true
            } else {
                state.lastFailure = "shard error"
            }
        case .failure(let failure):
            state.lastFailure = failure.message
        }
        if client.closing { return }
        retrievalRound(state, client, &actions)
    }

    /// Sends each unsettled key to its next replica, grouped by shard; or answers when none is left.
    mutating func retrievalRound(_ state: RetrievalState, _ client: ClientPipeline, _ actions: inout ProxyActions) {
        let request = state.request
        // Shards in the order first chosen, so that a round's requests go out in key order.
        var groups: [(shard: Int, indices: [Int])] = []
        for index in state.keys.indices where state.results[index] == nil && !state.settled[index] {
            // Checked now, not when the miss came in: another shard's reply may have held this
            // round back while the client's later write of the key went out.
            if !state.tried[index].isEmpty, !mayFallBack(request, state.keys[index], state.slot, client) {
                state.settled[index] = true
                continue
            }
            let replicas = state.replicas[index]
            let untried = replicas.filter { !state.tried[index].contains($0) }
            guard !untried.isEmpty else {
                state.settled[index] = true
                continue
            }
            let target: Int
            if state.tried[index].isEmpty {
                let key = state.keys[index]
                target = readsPrimary(request, key, client) ? untried[0] : chooseReplica(ReplicaSet(untried))
                if request.touches {
                    propagateTouch(key, exptime: request.exptime, to: replicas, except: target, &actions)
                }
            } else {
                target = untried[0]
                proxy.counters.add(.fallbackReads)
            }
            state.tried[index].append(target)
            if let group = groups.firstIndex(where: { $0.shard == target }) {
                groups[group].indices.append(index)
            } else {
                groups.append((target, [index]))
            }
        }
        guard !groups.isEmpty else {
            finishRetrieval(state, &actions)
            return
        }
        state.pending = groups.count
        for (shard, indices) in groups {
            var bytes = ByteBuffer()
            MemcacheForwarding.writeRetrieval(
                operation: request.operation,
                exptime: request.exptime,
                keys: indices.map { state.keys[$0] },
                into: &bytes
            )
            actions.append(
                .send(
                    shard: shard,
                    .bytes(bytes),
                    expecting: .retrieval,
                    then: .readRound(state, shard: shard, indices: indices)
                )
            )
        }
    }

    /// One shard's answer in a read round; the next round starts when the round's last is in.
    mutating func readRoundAnswered(
        _ state: RetrievalState,
        shard: Int,
        indices: [Int],
        _ result: Result<ShardReply, ShardFailure>,
        _ client: ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        switch result {
        case .success(.values(let values)):
            state.answered = true
            let matches = Self.match(values, to: indices.lazy.map { state.keys[$0] })
            for (index, match) in zip(indices, matches) {
                if let match {
                    state.results[index] = values[match]
                    if state.tried[index].count > 1 { state.repairFrom[index] = shard }
                } else {
                    state.missedOn[index].append(shard)
                    // gets/gats read the primary only: its miss is the answer.
                    if !mayFallBack(state.request, state.keys[index], state.slot, client) {
                        state.settled[index] = true
                    }
                }
            }
        case .success(let reply):
            if reply.blamesRequest {
                // The request itself is at fault: that is the answer, on any replica.
                state.clientError = reply.raw
                for index in indices { state.settled[index] = true }
            } else {
                state.lastFailure = "shard error"
            }
        case .failure(let failure):
            state.lastFailure = failure.message
        }
        state.pending -= 1
        guard state.pending == 0, !client.closing else { return }
        retrievalRound(state, client, &actions)
    }

    /// For each key asked, in order, the position of its value in a shard's hits (nil: a miss).
    /// memcached answers in the order of the keys (a key asked twice, twice), so one walk matches
    /// them; hits in another order are matched by key afterwards. Linear either way: a search per
    /// key was quadratic (a 100,000-key get spent seconds in memmove).
    static func match<Keys: Collection<ByteBuffer>>(_ values: [RetrievedValue], to keys: Keys) -> [Int?] {
        var matches: [Int?] = []
        matches.reserveCapacity(keys.count)
        var next = values.startIndex
        for key in keys {
            if next < values.endIndex, values[next].key == key {
                matches.append(next)
                next += 1
            } else {
                matches.append(nil)
            }
        }
        guard next < values.endIndex else { return matches }
        // Some hits were not where the walk looked: match the rest by key, first come first.
        var unmatched: [ByteBuffer: [Int]] = [:]
        for position in (next..<values.endIndex).reversed() {
            unmatched[values[position].key, default: []].append(position)
        }
        for (slot, key) in zip(matches.indices, keys) where matches[slot] == nil {
            matches[slot] = unmatched[key]?.popLast()
        }
        return matches
    }

    func finishRetrieval(_ state: RetrievalState, _ actions: inout ProxyActions) {
        if let sliced = state.slice {
            finishSlice(state, of: sliced, &actions)
            return
        }
        if let clientError = state.clientError {
            actions.append(.reply(state.slot, clientError, failed: true))
            return
        }
        if !state.answered, let failure = state.lastFailure {
            actions.append(Self.serverError(state.slot, failure))
            return
        }
        var (reply, _) = takeHits(state)
        reply.writeStaticString("END\r\n")
        actions.append(.reply(state.slot, reply, failed: false))
        if proxy.configuration.readRepair { readRepair(state, &actions) }
    }

    /// A slice's hits go out as they are (no END); the final line waits for every slice: END, or
    /// what a multi-get of those keys would have answered when no shard answered any slice or
    /// one blamed the request.
    private func finishSlice(_ state: RetrievalState, of sliced: SlicedRetrieval, _ actions: inout ProxyActions) {
        sliced.unfinished -= 1
        if state.answered { sliced.answered = true }
        if let failure = state.lastFailure { sliced.lastFailure = failure }
        if let clientError = state.clientError { sliced.clientError = clientError }
        let (hits, count) = takeHits(state)
        actions.append(.reply(state.slot, count > 0 ? hits : nil, failed: false))
        if proxy.configuration.readRepair { readRepair(state, &actions) }
        guard sliced.unfinished == 0, let final = sliced.final else { return }
        if let clientError = sliced.clientError {
            actions.append(.reply(final, clientError, failed: true))
        } else if !sliced.answered, let failure = sliced.lastFailure {
            actions.append(Self.serverError(final, failure))
        } else {
            actions.append(.reply(final, Self.end, failed: false))
        }
    }

    private static let end = ByteBuffer(string: "END\r\n")

    /// The hits of a multi-key read in key order, and how many; counted as hits and misses.
    private func takeHits(_ state: RetrievalState) -> (ByteBuffer, UInt64) {
        var hits = ByteBuffer()
        var count: UInt64 = 0
        for index in state.keys.indices {
            guard var raw = state.results[index]?.raw else { continue }
            hits.writeBuffer(&raw)
            count += 1
        }
        proxy.counters.add(.getHits, count)
        proxy.counters.add(.getMisses, UInt64(state.keys.count) - count)
        return (hits, count)
    }

    /// Reads that must see one server's state go to the primary: CAS uniques (gets/gats), reads
    /// that change the item (gat/gats), and keys this client wrote while replies were outstanding
    /// (the primary has the write first, including a `cas` whose copy to the others is still on
    /// its way).
    func readsPrimary(_ request: RetrievalRequest, _ key: ByteBuffer, _ client: ClientPipeline) -> Bool {
        request.returnsCAS || request.touches || client.lastWrite(key) != nil
    }

    /// Whether a miss may be retried on another replica: not for reads of the primary's state,
    /// and not when this client wrote the key after the read (the retry would see the future).
    func mayFallBack(
        _ request: RetrievalRequest,
        _ key: ByteBuffer,
        _ slot: ReplySlot,
        _ client: ClientPipeline
    ) -> Bool {
        !request.returnsCAS && !request.touches && (client.lastWrite(key) ?? 0) < slot.sequence
    }

    /// gat/gats and `mg … T`: the other replicas get the same new expiry, sent now so that it
    /// keeps its place among this client's requests.
    func propagateTouch(
        _ key: ByteBuffer,
        exptime: Int32,
        to replicas: ReplicaSet,
        except target: Int,
        _ actions: inout ProxyActions
    ) {
        var touch = ByteBuffer()
        MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &touch)
        // A recovering replica serves no reads but takes writes, this one included.
        let targets = proxy.health.anyRecovering ? proxy.liveReplicas(key) : replicas
        for replica in targets where replica != target {
            actions.append(.send(shard: replica, .bytes(touch), expecting: .line, then: .ignore))
        }
    }

    /// Writes a value found on a fallback replica back to the replicas that missed it, with the
    /// remaining TTL read from the replica that had it.
    func readRepair(_ state: RetrievalState, _ actions: inout ProxyActions) {
        for index in state.keys.indices {
            guard let value = state.results[index], let source = state.repairFrom[index] else { continue }
            let targets = state.missedOn[index]
            guard !targets.isEmpty else { continue }
            var probe = ByteBuffer()
            MemcacheForwarding.writeOwnMeta(.get, key: value.key, flags: "t", into: &probe)
            actions.append(
                .send(
                    shard: source,
                    .bytes(probe),
                    expecting: .meta,
                    then: .repairSource(ReadRepair(value: value, targets: targets))
                )
            )
        }
    }

    /// The TTL of a repaired value: the copies go out with it.
    func repairSourceAnswered(
        _ repair: ReadRepair,
        _ result: Result<ShardReply, ShardFailure>,
        _ actions: inout ProxyActions
    ) {
        let value = repair.value
        guard case .success(.meta(let meta)) = result, meta.code == "HD" || meta.code == "VA" else { return }
        var ttl: Int32 = 0
        for flag in meta.flags where flag.readableBytesView.first == UInt8(ascii: "t") {
            let text = String(buffer: flag).dropFirst()
            if let seconds = Int32(text), seconds > 0 { ttl = seconds }
        }
        var copy = ByteBuffer()
        MemcacheForwarding.writeStorage(
            StorageRequest(
                mode: .add,
                key: value.key,
                flags: value.flags,
                exptime: ttl,
                casUnique: 0,
                noreply: false,
                data: value.data
            ),
            into: &copy
        )
        for target in repair.targets {
            proxy.counters.add(.readRepairs)
            actions.append(.send(shard: target, .bytes(copy), expecting: .line, then: .ignore))
        }
    }
}

/// A single-key read waiting for its shard.
struct ReadOne {
    var request: RetrievalRequest
    var slot: ReplySlot
    var replicas: ReplicaSet
    var target: Int
}

/// A value found on a fallback replica, to be copied to the replicas that missed it.
final class ReadRepair {
    let value: RetrievedValue
    let targets: [Int]

    init(value: RetrievedValue, targets: [Int]) {
        self.value = value
        self.targets = targets
    }
}

/// The progress of one multi-key read over its rounds.
final class RetrievalState {
    let request: RetrievalRequest
    let slot: ReplySlot
    let keys: [ByteBuffer]
    var replicas: [ReplicaSet]
    var tried: [[Int]]
    var results: [RetrievedValue?]
    /// No further replica to try for this key.
    var settled: [Bool]
    /// Replicas that answered a clean miss (read repair targets).
    var missedOn: [[Int]]
    /// The replica a fallback read found the value on.
    var repairFrom: [Int?]
    var pending = 0
    /// Some shard answered (hit or miss) for some key.
    var answered = false
    var lastFailure: String?
    var clientError: ByteBuffer?
    /// The get this is a slice of, when it had more than `ProxyEngine.sliceKeys` keys.
    var slice: SlicedRetrieval?

    init(request: RetrievalRequest, slot: ReplySlot) {
        self.request = request
        self.slot = slot
        self.keys = Array(request.keys)
        self.replicas = Array(repeating: ReplicaSet(), count: keys.count)
        self.tried = Array(repeating: [], count: keys.count)
        self.results = Array(repeating: nil, count: keys.count)
        self.settled = Array(repeating: false, count: keys.count)
        self.missedOn = Array(repeating: [], count: keys.count)
        self.repairFrom = Array(repeating: nil, count: keys.count)
    }
}

/// A get of more than `ProxyEngine.sliceKeys` keys, started a slice at a time.
final class SlicedRetrieval {
    let request: RetrievalRequest
    /// When the get was received (nanoseconds): its latency is recorded on the final line.
    let start: UInt64
    /// The first key not started yet.
    var next = 0
    /// Slices started whose hits are not out yet.
    var unfinished = 0
    /// The slot of the final line (END or an error), opened with the last slice.
    var final: ReplySlot?
    var answered = false
    var lastFailure: String?
    var clientError: ByteBuffer?

    init(request: RetrievalRequest, start: UInt64) {
        self.request = request
        self.start = start
    }
}
