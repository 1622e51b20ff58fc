import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import NIOCore

/// The meta protocol through the proxy: mn answered here, mg read from the primary with
/// fallback (or replicated when it changes the item), me forwarded, ms/md/ma replicated.
extension ProxyEngine {
    mutating func executeMeta(_ request: MetaRequest, _ client: inout ClientPipeline, _ actions: inout ProxyActions) {
        let quiet = MemcacheForwarding.metaRequestWasQuiet(request)
        var bytes = ByteBuffer()
        switch request.command {
        case .noop:
            let slot = open(.metaNoop, &client)
            actions.append(.reply(slot, Self.line("MN"), failed: false))
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
                    quiet: quiet ? { reply in reply.metaCode == "EN" } : nil,
                    &client,
                    &actions
                )
                return
            }
            let slot = open(.metaGet, keys: 1, &client)
            // mg answers with one server's state of the item (a stale item's win token, W once
            // then Z; the CAS unique; hit and access times): the primary is that server, as
            // for gets. A miss or a failure there still moves on to the other replicas.
            let read = MetaGetState(
                request: bytes,
                key: request.key,
                replicas: proxy.readReplicas(request.key),
                quiet: quiet,
                slot: slot
            )
            metaGetNext(read, &actions)
        case .debug:
            MemcacheForwarding.writeMeta(request, into: &bytes)
            let slot = open(.metaDebug, &client)
            guard let primary = proxy.readReplicas(request.key).first else {
                actions.append(Self.serverError(slot, "no live shard for the key"))
                return
            }
            actions.append(.send(shard: primary, .bytes(bytes), expecting: .meta, then: .forward(slot)))
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
                compareAndSwapMeta(request, bytes: bytes, quiet: hidden, &client, &actions)
                return
            }
            replicate(
                key: request.key,
                request: bytes,
                operation: request.operation,
                noreply: false,
                expected: .meta,
                quiet: hidden,
                &client,
                &actions
            )
        }
    }

    /// mg on the next untried replica, the primary first; the answer when none is left.
    func metaGetNext(_ read: MetaGetState, _ actions: inout ProxyActions) {
        guard let target = read.replicas.first(where: { !read.tried.contains($0) }) else {
            if let lastFailure = read.lastFailure {
                actions.append(Self.serverError(read.slot, lastFailure))
            } else {
                // Every replica missed.
                actions.append(.reply(read.slot, read.quiet ? nil : Self.line("EN"), failed: false))
            }
            return
        }
        read.tried.append(target)
        actions.append(
            .send(shard: target, .bytes(read.request), expecting: .meta, then: .metaGet(read, target: target))
        )
    }

    /// A replica's answer to mg: a miss (`EN`) or a failure moves on to the next replica.
    func metaGetAnswered(
        _ read: MetaGetState,
        target: Int,
        _ result: Result<ShardReply, ShardFailure>,
        _ client: ClientPipeline,
        _ actions: inout ProxyActions
    ) {
        switch result {
        case .success(.meta(let meta)) where meta.code == "EN":
            // No retry when this client wrote the key after the read: it would see the future.
            let untried = read.replicas.contains { !read.tried.contains($0) }
            if untried, (client.lastWrite(read.key) ?? 0) < read.slot.sequence {
                read.lastFailure = nil
                metaGetNext(read, &actions)
            } else {
                actions.append(.reply(read.slot, read.quiet ? nil : meta.raw, failed: false))
            }
        case .success(let reply) where !reply.isServerFailure:
            actions.append(.reply(read.slot, reply.raw, failed: reply.isFailure))
        case .success:
            read.lastFailure = "shard error"
            metaGetNext(read, &actions)
        case .failure(let failure):
            read.lastFailure = failure.message
            metaGetNext(read, &actions)
        }
    }
}

/// An mg going through the replicas of its key.
final class MetaGetState {
    let request: ByteBuffer
    let key: ByteBuffer
    let replicas: ReplicaSet
    let quiet: Bool
    let slot: ReplySlot
    var tried: [Int] = []
    /// Why the last replica tried gave no answer; nil after a miss.
    var lastFailure: String?

    init(request: ByteBuffer, key: ByteBuffer, replicas: ReplicaSet, quiet: Bool, slot: ReplySlot) {
        self.request = request
        self.key = key
        self.replicas = replicas
        self.quiet = quiet
        self.slot = slot
    }
}

extension MetaFlags {
    /// `N`, `R` or `T`: the mg changes the item it reads.
    var changesItem: Bool {
        vivifyExptime != nil || recacheExptime != nil || newExptime != nil
    }
}
