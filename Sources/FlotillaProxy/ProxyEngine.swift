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
            finish(slot, line: "VERSION \(context.version)", failed: false)
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

    // MARK: Reads

    /// get/gets/gat/gats: keys grouped by the replica chosen for each, one request per shard, the
    /// hits merged back in request order. A miss or a failure on one replica is retried on the
    /// next (not for gets/gats, whose CAS unique belongs to the primary: they read the primary).
    private func retrieve(_ request: RetrievalRequest) {
        if request.keys.count == 1 {
            retrieveOne(request)
            return
        }
        let slot = openSlot(request.operation)
        let state = RetrievalState(keys: request.keys)
        for index in request.keys.indices {
            let replicas = context.liveReplicas(request.keys[index])
            state.replicas[index] = replicas
        }
        retrievalRound(request, state: state, slot: slot)
    }

    /// The common case, a single key: one request, no grouping; a miss or a failure continues
    /// as a multi-key read would, on the next replica.
    private func retrieveOne(_ request: RetrievalRequest) {
        let slot = openSlot(request.operation)
        let key = request.keys[0]
        let replicas = context.liveReplicas(key)
        guard !replicas.isEmpty else {
            finish(slot, lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        let target = readsPrimary(request, key) ? replicas[0] : shards.chooseReplica(replicas)
        if request.touches { propagateTouch(key, exptime: request.exptime, to: replicas, except: target) }
        var bytes = ByteBuffer()
        MemcacheForwarding.writeRetrieval(
            operation: request.operation,
            exptime: request.exptime,
            keys: CollectionOfOne(key),
            into: &bytes
        )
        shards.links[target].call(bytes, expecting: .retrieval) { result in
            if case .success(.values(let values)) = result, let value = values.first {
                var reply = value.raw
                reply.writeStaticString("END\r\n")
                self.context.counters.add(.getHits)
                self.finish(slot, reply, failed: false)
                return
            }
            // A miss, an error or a failure: the general path takes over from here.
            let state = RetrievalState(keys: request.keys)
            state.replicas[0] = replicas
            state.tried[0] = [target]
            switch result {
            case .success(.values):
                state.answered = true
                state.missedOn[0] = [target]
                if !self.mayFallBack(request, key, slot) { state.settled[0] = true }
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
            if self.closing { return }
            self.retrievalRound(request, state: state, slot: slot)
        }
    }

    private func retrievalRound(_ request: RetrievalRequest, state: RetrievalState, slot: ReplySlot) {
        var groups: [Int: [Int]] = [:]
        for index in state.keys.indices where state.results[index] == nil && !state.settled[index] {
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
                context.counters.add(.fallbackReads)
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

    private func finishRetrieval(_ state: RetrievalState, slot: ReplySlot) {
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
        context.counters.add(.getHits, hits)
        context.counters.add(.getMisses, UInt64(state.keys.count) - hits)
        finish(slot, reply, failed: false)
        if context.configuration.readRepair { readRepair(state) }
    }

    /// Reads that must see one server's state go to the primary: CAS uniques (gets/gats), reads
    /// that change the item (gat/gats), and keys this client wrote while replies were outstanding
    /// (the primary has the write first, including a `cas` whose copy to the others is still on
    /// its way).
    private func readsPrimary(_ request: RetrievalRequest, _ key: ByteBuffer) -> Bool {
        request.returnsCAS || request.touches || lastWrite(key) != nil
    }

    /// Whether a miss may be retried on another replica: not for reads of the primary's state,
    /// and not when this client wrote the key after the read (the retry would see the future).
    private func mayFallBack(_ request: RetrievalRequest, _ key: ByteBuffer, _ slot: ReplySlot) -> Bool {
        !request.returnsCAS && !request.touches && (lastWrite(key) ?? 0) < slot.sequence
    }

    /// gat/gats and `mg … T`: the other replicas get the same new expiry, sent now so that it
    /// keeps its place among this client's requests.
    private func propagateTouch(_ key: ByteBuffer, exptime: Int32, to replicas: ReplicaSet, except target: Int) {
        var touch = ByteBuffer()
        MemcacheForwarding.writeTouch(key: key, exptime: exptime, into: &touch)
        for replica in replicas where replica != target {
            shards.links[replica].call(touch, expecting: .line) { _ in }
        }
    }

    /// Writes a value found on a fallback replica back to the replicas that missed it, with the
    /// remaining TTL read from the replica that had it.
    private func readRepair(_ state: RetrievalState) {
        for index in state.keys.indices {
            guard let value = state.results[index], let source = state.repairFrom[index] else { continue }
            let targets = state.missedOn[index]
            guard !targets.isEmpty else { continue }
            var probe = ByteBuffer()
            probe.writeStaticString("mg ")
            var key = value.key
            probe.writeBuffer(&key)
            probe.writeStaticString(" t\r\n")
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
                    self.context.counters.add(.readRepairs)
                    self.shards.links[target].call(repair, expecting: .line) { _ in }
                }
            }
        }
    }

    // MARK: Writes

    private func store(_ request: StorageRequest) {
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
        shards.links[primary].call(bytes, expecting: .line) { result in
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
                        guard !slot.done else { return }
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
                guard !gather.replied, !slot.done else { return }
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
    private func send(
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

    private func flushAll(delay: Int32?, noreply: Bool) {
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

    // MARK: Meta

    private func executeMeta(_ request: MetaRequest) {
        let quiet = MemcacheForwarding.metaRequestWasQuiet(request)
        var bytes = ByteBuffer()
        switch request.command {
        case .noop:
            let slot = openSlot(.metaNoop)
            finish(slot, lineBuffer("MN"), failed: false)
        case .get:
            MemcacheForwarding.writeMeta(request, into: &bytes)
            let slot = openSlot(.metaGet)
            let replicas = context.liveReplicas(request.key)
            // Flags that read or change one server's state (CAS unique, TTL, hit and access
            // times, vivify and recache tokens) make the primary the only authority.
            let onPrimary =
                request.flags.reportsOrChangesState || request.tokens.contains { $0.flag == UInt8(ascii: "c") }
                || lastWrite(request.key) != nil
            if onPrimary, let primary = replicas.first {
                if let exptime = request.flags.newExptime {
                    propagateTouch(request.key, exptime: exptime, to: replicas, except: primary)
                }
                metaGet(
                    bytes,
                    key: request.key,
                    replicas: ReplicaSet([primary]),
                    tried: [],
                    quiet: quiet,
                    slot: slot,
                    lastFailure: nil
                )
            } else {
                metaGet(
                    bytes,
                    key: request.key,
                    replicas: replicas,
                    tried: [],
                    quiet: quiet,
                    slot: slot,
                    lastFailure: nil
                )
            }
        case .debug:
            MemcacheForwarding.writeMeta(request, into: &bytes)
            let slot = openSlot(.metaDebug)
            guard let primary = context.liveReplicas(request.key).first else {
                finish(slot, lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
                return
            }
            shards.links[primary].call(bytes, expecting: .meta) { result in
                self.finishForwarded(slot, result)
            }
        case .set, .delete, .arithmetic:
            MemcacheForwarding.writeMeta(request, into: &bytes)
            // memcached's quiet mode hides HD for ms and md, and for ma the success (HD, or VA
            // with v). (It still sends the HD of an item ma created with N; the proxy cannot tell
            // that case from its replicas' replies and hides it too.)
            var hidden: ((ShardReply) -> Bool)?
            if quiet, request.command == .arithmetic {
                hidden = { reply in
                    guard let code = reply.metaCode else { return false }
                    return code == "HD" || code == "VA"
                }
            } else if quiet {
                hidden = { reply in reply.metaCode == "HD" }
            }
            if request.flags.compareCAS != nil {
                compareAndSwapMeta(request, bytes: bytes, quiet: hidden)
                return
            }
            replicate(
                key: request.key,
                request: bytes,
                operation: request.operation,
                noreply: false,
                expected: .meta,
                quiet: hidden
            )
        }
    }

    /// ms/md/ma with `C<cas>`: the unique is the primary's, so the primary decides; on success
    /// the same command without `C` goes to the other replicas.
    private func compareAndSwapMeta(_ request: MetaRequest, bytes: ByteBuffer, quiet: ((ShardReply) -> Bool)?) {
        let slot = openSlot(request.operation)
        noteWrite(request.key)
        let replicas = context.liveReplicas(request.key)
        guard let primary = replicas.first else {
            finish(slot, lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        var unconditional = request
        unconditional.tokens.removeAll { $0.flag == UInt8(ascii: "C") }
        unconditional.flags.compareCAS = nil
        var copy = ByteBuffer()
        MemcacheForwarding.writeMeta(unconditional, into: &copy)
        shards.links[primary].call(bytes, expecting: .meta) { result in
            guard case .success(let reply) = result else {
                self.finishForwarded(slot, result)
                return
            }
            if let code = reply.metaCode, code == "HD" || code == "VA" {
                for replica in replicas where replica != primary {
                    self.send(copy, to: replica, expecting: .meta, retries: 2) { result in
                        if case .failure = result { self.context.health.addHint(replica, key: request.key) }
                    }
                }
            }
            let hidden = quiet?(reply) ?? false
            self.finish(slot, hidden ? nil : reply.raw, failed: reply.isFailure)
        }
    }

    /// mg: one replica; a miss (`EN`) or a failure moves on to the next replica.
    private func metaGet(
        _ bytes: ByteBuffer,
        key: ByteBuffer,
        replicas: ReplicaSet,
        tried: [Int],
        quiet: Bool,
        slot: ReplySlot,
        lastFailure: String?
    ) {
        let untried = replicas.filter { !tried.contains($0) }
        guard !untried.isEmpty else {
            if let lastFailure {
                finish(slot, lineBuffer("SERVER_ERROR \(lastFailure)"), failed: true)
            } else {
                // Every replica missed.
                finish(slot, quiet ? nil : lineBuffer("EN"), failed: false)
            }
            return
        }
        let target = tried.isEmpty ? shards.chooseReplica(ReplicaSet(untried)) : untried[0]
        shards.links[target].call(bytes, expecting: .meta) { result in
            switch result {
            case .success(.meta(let meta)) where meta.code == "EN":
                // No retry when this client wrote the key after the read: it would see the future.
                if untried.count > 1, (self.lastWrite(key) ?? 0) < slot.sequence {
                    self.metaGet(
                        bytes,
                        key: key,
                        replicas: replicas,
                        tried: tried + [target],
                        quiet: quiet,
                        slot: slot,
                        lastFailure: nil
                    )
                } else {
                    self.finish(slot, quiet ? nil : meta.raw, failed: false)
                }
            case .success(let reply) where !reply.isServerFailure:
                self.finish(slot, reply.raw, failed: reply.isFailure)
            case .success:
                self.metaGet(
                    bytes,
                    key: key,
                    replicas: replicas,
                    tried: tried + [target],
                    quiet: quiet,
                    slot: slot,
                    lastFailure: "shard error"
                )
            case .failure(let failure):
                self.metaGet(
                    bytes,
                    key: key,
                    replicas: replicas,
                    tried: tried + [target],
                    quiet: quiet,
                    slot: slot,
                    lastFailure: failure.message
                )
            }
        }
    }

    private func finishForwarded(_ slot: ReplySlot, _ result: Result<ShardReply, ShardFailure>) {
        switch result {
        case .success(let reply):
            finish(slot, reply.raw, failed: reply.isFailure)
        case .failure(let failure):
            finish(slot, lineBuffer("SERVER_ERROR \(failure.message)"), failed: true)
        }
    }

    // MARK: Stats

    private func statsReply(_ arguments: [String]) -> ByteBuffer {
        var reply = ByteBuffer()
        guard arguments.isEmpty else {
            // Sub-statistics (items, slabs, settings …) belong to each shard: ask them directly.
            reply.writeStaticString("END\r\n")
            return reply
        }
        let health = context.health.snapshot()
        let uptime = ContinuousClock.now - context.startedAt
        var lines: [(String, String)] = [
            ("pid", "\(getpid())"),
            ("uptime", "\(uptime.components.seconds)"),
            ("version", context.version),
            ("shards", "\(health.count)"),
            ("shards_down", "\(health.filter(\.down).count)"),
            ("replicas", "\(context.configuration.replicas)"),
            ("consistency", context.configuration.consistency.rawValue),
            ("get_hits", "\(context.counters[.getHits])"),
            ("get_misses", "\(context.counters[.getMisses])"),
            ("fallback_reads", "\(context.counters[.fallbackReads])"),
            ("read_repairs", "\(context.counters[.readRepairs])"),
            ("replication_failures", "\(context.counters[.replicationFailures])"),
            ("hints_queued", "\(context.counters[.hintsQueued])"),
        ]
        for (index, shard) in health.enumerated() {
            let name = context.configuration.shards[index].address
            lines.append(("shard:\(name):state", shard.down ? "down" : "up"))
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

extension ShardReply {
    /// The bytes to pass back to the client.
    var raw: ByteBuffer {
        switch self {
        case .line(let line): return line.raw
        case .meta(let meta): return meta.raw
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
