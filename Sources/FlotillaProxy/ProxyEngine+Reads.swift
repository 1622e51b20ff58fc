import FlotillaCore
import FlotillaMemcache
import NIOCore

/// Reads: one replica, the power of two choices, fallback, read repair.
extension ProxyConnectionHandler {
    // MARK: Reads

    /// get/gets/gat/gats: keys grouped by the replica chosen for each, one request per shard, the
    /// hits merged back in request order. A miss or a failure on one replica is retried on the
    /// next (not for gets/gats, whose CAS unique belongs to the primary: they read the primary).
    func retrieve(_ request: RetrievalRequest) {
        if request.keys.count == 1 {
            retrieveOne(request)
            return
        }
        let slot = openSlot(request.operation)
        let state = RetrievalState(keys: Array(request.keys))
        for index in request.keys.indices {
            let replicas = proxy.readReplicas(request.keys[index])
            state.replicas[index] = replicas
        }
        retrievalRound(request, state: state, slot: slot)
    }

    /// The common case, a single key: one request, no grouping; a miss or a failure continues
    /// as a multi-key read would, on the next replica.
    func retrieveOne(_ request: RetrievalRequest) {
        let slot = openSlot(request.operation)
        let key = request.keys[0]
        let replicas = proxy.readReplicas(key)
        guard !replicas.isEmpty else {
            finish(slot, lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        let target = readsPrimary(request, key) ? replicas[0] : shards.chooseReplica(replicas)
        if request.touches { propagateTouch(key, exptime: request.exptime, to: replicas, except: target) }
        let read = ReadOne(request: request, slot: slot, replicas: replicas, target: target)
        shards.links[target].call(expecting: .retrievalOfOne, callback: .readOne(self, read)) { bytes in
            MemcacheForwarding.writeRetrieval(
                operation: request.operation,
                exptime: request.exptime,
                key: key,
                into: &bytes
            )
        }
    }

    /// The shard's answer to `retrieveOne`.
    func readOneAnswered(_ read: ReadOne, _ result: Result<ShardReply, ShardFailure>) {
        let request = read.request
        let slot = read.slot
        switch result {
        case .success(.value(let value)):
            proxy.counters.add(.getHits)
            finish(slot, hits: value.raw)
            return
        case .success(.values(let values)) where !values.isEmpty:
            proxy.counters.add(.getHits)
            finish(slot, hits: values[0].raw)
            return
        default:
            break
        }
        // A miss, an error or a failure: the general path takes over from here.
        let state = RetrievalState(keys: Array(request.keys))
        state.replicas[0] = read.replicas
        state.tried[0] = [read.target]
        switch result {
        case .success(.values):
            state.answered = true
            state.missedOn[0] = [read.target]
            if !mayFallBack(request, request.keys[0], slot) { state.settled[0] = true }
        case .success(let reply):
            if case .line(let line) = reply, line.status == .clientError || line.status == .error {
                state.clientError = line.raw
                state.settled[0] = true
            } else {
                state.lastFailure = "shard error"
            }
        case .failure(let failure):
            state.lastFailure = failure.message
        }
        if closing { return }
        retrievalRound(request, state: state, slot: slot)
    }

    func retrievalRound(_ request: RetrievalRequest, state: RetrievalState, slot: ReplySlot) {
        var groups: [Int: [Int]] = [:]
        for index in state.keys.indices where state.results[index] == nil && !state.settled[index] {
            // Checked now, not when the miss came in: another shard's reply may have held this
            // round back while the client's later write of the key went out.
            if !state.tried[index].isEmpty, !mayFallBack(request, state.keys[index], slot) {
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
                target = readsPrimary(request, key) ? untried[0] : shards.chooseReplica(ReplicaSet(untried))
                if request.touches {
                    propagateTouch(key, exptime: request.exptime, to: replicas, except: target)
                }
            } else {
                target = untried[0]
                proxy.counters.add(.fallbackReads)
            }
            state.tried[index].append(target)
            groups[target, default: []].append(index)
        }
        guard !groups.isEmpty else {
            finishRetrieval(state, slot: slot)
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
            shards.links[shard].call(bytes, expecting: .retrieval) { result in
                switch result {
                case .success(.values(let values)):
                    state.answered = true
                    var unused = values
                    for index in indices {
                        if let position = unused.firstIndex(where: { $0.key == state.keys[index] }) {
                            let value = unused.remove(at: position)
                            state.results[index] = value
                            if state.tried[index].count > 1 { state.repairFrom[index] = shard }
                        } else {
                            state.missedOn[index].append(shard)
                            // gets/gats read the primary only: its miss is the answer.
                            if !self.mayFallBack(request, state.keys[index], slot) { state.settled[index] = true }
                        }
                    }
                case .success(let reply):
                    if case .line(let line) = reply, line.status == .clientError || line.status == .error {
                        // The request itself is at fault: that is the answer, on any replica.
                        state.clientError = line.raw
                        for index in indices { state.settled[index] = true }
                    } else {
                        state.lastFailure = "shard error"
                    }
                case .failure(let failure):
                    state.lastFailure = failure.message
                }
                state.pending -= 1
                if state.pending == 0 {
                    if self.closing { return }
                    self.retrievalRound(request, state: state, slot: slot)
                }
            }
        }
    }

    func finishRetrieval(_ state: RetrievalState, slot: ReplySlot) {
        if let clientError = state.clientError {
            finish(slot, clientError, failed: true)
            return
        }
        if !state.answered, let failure = state.lastFailure {
            finish(slot, line: "SERVER_ERROR \(failure)")
            return
        }
        var reply = ByteBuffer()
        var hits: UInt64 = 0
        for index in state.keys.indices {
            guard var raw = state.results[index]?.raw else { continue }
            reply.writeBuffer(&raw)
            hits += 1
        }
        reply.writeStaticString("END\r\n")
        proxy.counters.add(.getHits, hits)
        proxy.counters.add(.getMisses, UInt64(state.keys.count) - hits)
        finish(slot, reply, failed: false)
        if proxy.configuration.readRepair { readRepair(state) }
    }

    /// Reads that must see one server's state go to the primary: CAS uniques (gets/gats), reads
    /// that change the item (gat/gats), and keys this client wrote while replies were outstanding
    /// (the primary has the write first, including a `cas` whose copy to the others is still on
    /// its way).
    func readsPrimary(_ request: RetrievalRequest, _ key: ByteBuffer) -> Bool {
        request.returnsCAS || request.touches || lastWrite(key) != nil
    }

    /// Whether a miss may be retried on another replica: not for reads of the primary's state,
    /// and not when this client wrote the key after the read (the retry would see the future).
    func mayFallBack(_ request: RetrievalRequest, _ key: ByteBuffer, _ slot: ReplySlot) -> Bool {
        !request.returnsCAS && !request.touches && (lastWrite(key) ?? 0) < slot.sequence
    }

    /// gat/gats and `mg … T`: the other replicas get the same new expiry, sent now so that it
    /// keeps its place among this client's requests.
    func propagateTouch(_ key: ByteBuffer, exptime: Int32, to replicas: ReplicaSet, except target: Int) {
        var touch = ByteBuffer()
        MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &touch)
        // A recovering replica serves no reads but takes writes, this one included.
        let targets = proxy.health.anyRecovering ? proxy.liveReplicas(key) : replicas
        for replica in targets where replica != target {
            shards.links[replica].call(touch, expecting: .line) { _ in }
        }
    }

    /// Writes a value found on a fallback replica back to the replicas that missed it, with the
    /// remaining TTL read from the replica that had it.
    func readRepair(_ state: RetrievalState) {
        for index in state.keys.indices {
            guard let value = state.results[index], let source = state.repairFrom[index] else { continue }
            let targets = state.missedOn[index]
            guard !targets.isEmpty else { continue }
            var probe = ByteBuffer()
            MemcacheForwarding.writeOwnMeta(.get, key: value.key, flags: "t", into: &probe)
            shards.links[source].call(probe, expecting: .meta) { result in
                guard case .success(.meta(let meta)) = result, meta.code == "HD" || meta.code == "VA" else { return }
                var ttl: Int32 = 0
                for flag in meta.flags where flag.readableBytesView.first == UInt8(ascii: "t") {
                    let text = String(buffer: flag).dropFirst()
                    if let seconds = Int32(text), seconds > 0 { ttl = seconds }
                }
                var repair = ByteBuffer()
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
                    into: &repair
                )
                for target in targets {
                    self.proxy.counters.add(.readRepairs)
                    self.shards.links[target].call(repair, expecting: .line) { _ in }
                }
            }
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

/// The progress of one multi-key read over its rounds.
final class RetrievalState {
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

    init(keys: [ByteBuffer]) {
        self.keys = keys
        self.replicas = Array(repeating: ReplicaSet(), count: keys.count)
        self.tried = Array(repeating: [], count: keys.count)
        self.results = Array(repeating: nil, count: keys.count)
        self.settled = Array(repeating: false, count: keys.count)
        self.missedOn = Array(repeating: [], count: keys.count)
        self.repairFrom = Array(repeating: nil, count: keys.count)
    }
}
