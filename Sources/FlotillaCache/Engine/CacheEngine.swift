import FlotillaMemcache
import NIOCore

/// Executes decoded requests against the store and writes memcached's replies.
///
/// One engine per connection: it holds the connection's counters and shares the store and
/// totals with every other connection.
struct CacheEngine {
    /// What the connection does after a request.
    struct Outcome {
        var operation: MemcacheOperation
        var failed = false
        var closesConnection = false
        /// A metadump began: the connection writes it with `continueMetadump` as its client reads.
        var metadump: Metadump?
    }

    /// An `lru_crawler metadump` in progress on a connection.
    struct Metadump {
        var cursor = StripedStore.DumpCursor()
        /// False when the classes asked for hold no item (any class but flotilla's one).
        var listsItems: Bool
    }

    let store: StripedStore
    let context: CacheContext
    var counters = CacheCounterBatch()
    /// This connection in `stats conns`, once it is open.
    var connection: ConnectionRegistry.Entry?

    init(store: StripedStore, context: CacheContext) {
        self.store = store
        self.context = context
        self.counters.shard = context.totals.assignShard()
    }

    var clock: CacheClock { store.clock }

    mutating func execute(_ request: MemcacheRequest, into out: inout ByteBuffer) -> Outcome {
        switch request {
        case .reply(let reply):
            if !reply.suppressed { out.writeMemcacheLine(reply.message) }
            return Outcome(operation: reply.operation, failed: reply.isError)
        case .close:
            return Outcome(operation: .unknown, failed: true, closesConnection: true)
        case .binaryProtocol(let opcode, let opaque):
            out.writeBinaryUnknownCommand(opcode: opcode, opaque: opaque)
            return Outcome(operation: .unknown, failed: true, closesConnection: true)
        case .quit:
            return Outcome(operation: .quit, closesConnection: true)
        case .version:
            out.writeStaticString("VERSION ")
            out.writeString(CacheContext.protocolVersion)
            out.writeStaticString("\r\n")
            return Outcome(operation: .version)
        case .verbosity(let noreply):
            if !noreply { out.writeMemcacheLine("OK") }
            return Outcome(operation: .verbosity)
        case .stats(let arguments):
            return stats(arguments, into: &out)
        case .metadump(let classes):
            return Outcome(operation: .lruCrawler, metadump: Metadump(listsItems: Self.holdsItems(classes)))
        case .crawl:
            store.reclaimExpired()
            out.writeMemcacheLine("OK")
            return Outcome(operation: .lruCrawler)
        case .flushAll(let delay, let noreply):
            flushAll(delay: delay)
            if !noreply { out.writeMemcacheLine("OK") }
            return Outcome(operation: .flushAll)
        case .retrieval(let retrieval):
            return retrieve(retrieval, into: &out)
        case .storage(let storage):
            return store(storage, into: &out)
        case .tooLarge(let operation, let key, let noreply, let dropsCurrentValue):
            counters.add(.storeTooLarge)
            if dropsCurrentValue {
                let now = clock.now
                _ = store.withStripe(for: key) { $0.delete(key, now: now) }
            }
            if !noreply { out.writeMemcacheLine("SERVER_ERROR object too large for cache") }
            return Outcome(operation: operation, failed: true)
        case .delete(let key, let noreply):
            let now = clock.now
            let deleted = store.withStripe(for: key) { $0.delete(key, now: now) }
            counters.add(deleted ? .deleteHits : .deleteMisses)
            context.prefixes.record(key, .delete)
            if !noreply { out.writeMemcacheLine(deleted ? "DELETED" : "NOT_FOUND") }
            return Outcome(operation: .delete)
        case .arithmetic(let arithmetic):
            return arithmeticCommand(arithmetic, into: &out)
        case .touch(let key, let exptime, let noreply):
            let now = clock.now
            let expiry = clock.expiry(exptime, now: now)
            let touched = store.withStripe(for: key) { $0.touch(key, exptime: expiry, now: now) } != nil
            counters.add(.cmdTouch)
            counters.add(touched ? .touchHits : .touchMisses)
            if !noreply { out.writeMemcacheLine(touched ? "TOUCHED" : "NOT_FOUND") }
            return Outcome(operation: .touch)
        case .meta(let meta):
            counters.add(.cmdMeta)
            return executeMeta(meta, into: &out)
        }
    }

    /// Writes the next piece of a metadump, about `bytes` long; `END` and true once it is done.
    func continueMetadump(_ dump: inout Metadump, bytes: Int, into out: inout ByteBuffer) -> Bool {
        let stop = out.writerIndex + bytes
        while dump.listsItems, out.writerIndex < stop {
            if store.metadump(from: &dump.cursor, slots: Self.metadumpSlots, into: &out) {
                dump.listsItems = false
            }
        }
        guard !dump.listsItems else { return false }
        out.writeStaticString("END\r\n")
        return true
    }

    /// Slots visited under one stripe lock by a metadump.
    static let metadumpSlots = 512

    private static func holdsItems(_ classes: SlabClasses) -> Bool {
        switch classes {
        case .all: true
        case .ids(let ids): ids.contains(StripedStore.slabClass)
        }
    }

    private func flushAll(delay: Int32?) {
        let now = clock.now
        let delay = delay ?? 0
        let newOldest = delay > 0 ? clock.expiry(delay, now: now) : now
        let oldestLive = newOldest &- 1
        store.flush(oldestLive: oldestLive, immediately: oldestLive <= now)
    }

    private mutating func retrieve(_ request: RetrievalRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let expiry = request.touches ? clock.expiry(request.exptime, now: now) : 0
        let mark = out.writerIndex
        for key in request.keys {
            guard key.readableBytes <= 250 else {
                // memcached drops the replies it had stacked for this line.
                out.moveWriterIndex(to: mark)
                out.writeMemcacheLine("CLIENT_ERROR bad command line format")
                return Outcome(operation: request.operation, failed: true)
            }
            let hit = store.withStripe(for: key) { stripe -> Bool in
                let found: Int32?
                if request.touches {
                    found = stripe.touch(key, exptime: expiry, now: now)
                } else {
                    found = stripe.find(key, now: now)
                    if let found { stripe.bump(found, now: now) }
                }
                guard let slot = found else { return false }
                let item = stripe[slot]
                item.writeValueBlock(cas: request.returnsCAS ? item.cas : nil, into: &out)
                return true
            }
            if request.touches {
                counters.add(.cmdTouch)
                counters.add(hit ? .touchHits : .touchMisses)
            } else {
                counters.add(.cmdGet)
                counters.add(hit ? .getHits : .getMisses)
                context.prefixes.record(key, .get(hit: hit))
            }
        }
        out.writeStaticString("END\r\n")
        return Outcome(operation: request.operation)
    }

    private mutating func store(_ request: StorageRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let write = ItemStore.Write(
            mode: request.mode,
            key: request.key,
            data: request.data,
            flags: request.flags,
            exptime: clock.expiry(request.exptime, now: now),
            compareCAS: request.casUnique
        )
        let store = self.store
        let outcome = store.withStripe(for: request.key) { $0.store(write, now: now, nextCAS: store.nextCAS) }
        counters.add(.cmdSet)
        context.prefixes.record(request.key, .set)
        var failed = false
        let reply: StaticString
        switch outcome {
        case .stored:
            reply = "STORED"
            if request.mode == .cas { counters.add(.casHits) }
        case .notStored:
            reply = "NOT_STORED"
        case .exists:
            reply = "EXISTS"
            counters.add(.casBadval)
        case .notFound:
            reply = "NOT_FOUND"
            counters.add(.casMisses)
        case .outOfMemory:
            reply = "SERVER_ERROR out of memory storing object"
            counters.add(.storeNoMemory)
            failed = true
        }
        if !request.noreply { out.writeMemcacheLine(reply) }
        return Outcome(operation: request.operation, failed: failed)
    }

    private mutating func arithmeticCommand(_ request: ArithmeticRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let store = self.store
        let operation: MemcacheOperation = request.increment ? .incr : .decr
        let outcome = store.withStripe(for: request.key) {
            $0.addDelta(
                request.key,
                increment: request.increment,
                delta: request.delta,
                compareCAS: 0,
                now: now,
                nextCAS: store.nextCAS
            )
        }
        var failed = false
        switch outcome {
        case .updated(let digits, _):
            counters.add(request.increment ? .incrHits : .decrHits)
            if !request.noreply {
                out.writeBytes(digits)
                out.writeStaticString("\r\n")
            }
        case .notFound, .casMismatch:
            counters.add(request.increment ? .incrMisses : .decrMisses)
            if !request.noreply { out.writeMemcacheLine("NOT_FOUND") }
        case .nonNumeric:
            failed = true
            if !request.noreply {
                out.writeMemcacheLine("CLIENT_ERROR cannot increment or decrement non-numeric value")
            }
        case .outOfMemory:
            failed = true
            if !request.noreply { out.writeMemcacheLine("SERVER_ERROR out of memory") }
        }
        return Outcome(operation: operation, failed: failed)
    }
}
