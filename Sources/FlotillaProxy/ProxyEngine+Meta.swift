import FlotillaCore
import FlotillaMemcache
import NIOCore

/// The meta protocol through the proxy.
extension ProxyConnectionHandler {
    // MARK: Meta

    func executeMeta(_ request: MetaRequest) {
        let quiet = MemcacheForwarding.metaRequestWasQuiet(request)
        var bytes = ByteBuffer()
        switch request.command {
        case .noop:
            let slot = openSlot(.metaNoop)
            finish(slot, lineBuffer("MN"), failed: false)
        case .get:
            MemcacheForwarding.writeMeta(request, into: &bytes)
            if request.flags.changesItem {
                // Vivify (N), recache (R) and a new TTL (T) change the item, and the next reply
                // depends on it (W once, then Z; the placeholder item): every replica must make
                // the same change, as for a write, or a later read on another replica differs.
                replicate(
                    key: request.key,
                    request: bytes,
                    operation: .metaGet,
                    noreply: false,
                    expected: .meta,
                    quiet: quiet ? { reply in reply.metaCode == "EN" } : nil
                )
                return
            }
            let slot = openSlot(.metaGet)
            // mg answers with one server's state of the item (a stale item's win token, W once
            // then Z; the CAS unique; hit and access times): the primary is that server, as
            // for gets. A miss or a failure there still moves on to the other replicas.
            metaGet(
                bytes,
                key: request.key,
                replicas: proxy.readReplicas(request.key),
                tried: [],
                quiet: quiet,
                slot: slot,
                lastFailure: nil
            )
        case .debug:
            MemcacheForwarding.writeMeta(request, into: &bytes)
            let slot = openSlot(.metaDebug)
            guard let primary = proxy.readReplicas(request.key).first else {
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
    func compareAndSwapMeta(_ request: MetaRequest, bytes: ByteBuffer, quiet: ((ShardReply) -> Bool)?) {
        let slot = openSlot(request.operation)
        noteWrite(request.key)
        let replicas = proxy.liveReplicas(request.key)
        guard let primary = replicas.first else {
            finish(slot, lineBuffer("SERVER_ERROR no live shard for the key"), failed: true)
            return
        }
        var unconditional = request
        unconditional.tokens.removeAll { $0.flag == UInt8(ascii: "C") }
        unconditional.flags.compareCAS = nil
        var copy = ByteBuffer()
        MemcacheForwarding.writeMeta(unconditional, into: &copy)
        // The copies must reach the other replicas before this client's later requests do.
        holdPipeline()
        shards.links[primary].call(bytes, expecting: .meta) { result in
            defer { self.releasePipeline() }
            guard case .success(let reply) = result else {
                self.finishForwarded(slot, result)
                return
            }
            if let code = reply.metaCode, code == "HD" || code == "VA" {
                for replica in replicas where replica != primary {
                    self.send(copy, to: replica, expecting: .meta, retries: 2) { result in
                        if case .failure = result { self.proxy.health.addHint(replica, key: request.key) }
                    }
                }
            }
            let hidden = quiet?(reply) ?? false
            self.finish(slot, hidden ? nil : reply.raw, failed: reply.isFailure)
        }
    }

    /// mg: the primary; a miss (`EN`) or a failure moves on to the next replica.
    func metaGet(
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
        let target = untried[0]
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

    func finishForwarded(_ slot: ReplySlot, _ result: Result<ShardReply, ShardFailure>) {
        switch result {
        case .success(let reply):
            finish(slot, reply.raw, failed: reply.isFailure)
        case .failure(let failure):
            finish(slot, lineBuffer("SERVER_ERROR \(failure.message)"), failed: true)
        }
    }
}

extension MetaFlags {
    /// `N`, `R` or `T`: the mg changes the item it reads.
    var changesItem: Bool {
        vivifyExptime != nil || recacheExptime != nil || newExptime != nil
    }
}
