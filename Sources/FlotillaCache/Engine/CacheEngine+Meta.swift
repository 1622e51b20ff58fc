import FlotillaMemcache
import NIOCore

/// The meta commands, following memcached 1.6's `process_m*_command` step by step: flags are
/// echoed in the order they were sent, `q` hides only the nominal reply, and `N`/`R`/`I` drive
/// the win (`W`), already-won (`Z`) and stale (`X`) markers that let clients coalesce misses.
extension CacheEngine {
    private static let opaqueTooLong: StaticString = "CLIENT_ERROR opaque token too long"

    mutating func executeMeta(_ request: MetaRequest, into out: inout ByteBuffer) -> Outcome {
        switch request.command {
        case .noop:
            out.writeMemcacheLine("MN")
            return Outcome(operation: .metaNoop)
        case .debug:
            return metaDebug(request, into: &out)
        case .get:
            return metaGet(request, into: &out)
        case .set:
            return metaSet(request, into: &out)
        case .delete:
            return metaDelete(request, into: &out)
        case .arithmetic:
            return metaArithmetic(request, into: &out)
        }
    }

    /// Writes the ` O…` and ` k…` echoes of a reply that has no item to describe.
    /// Returns false when an opaque token is too long.
    private static func writeEchoes(_ request: MetaRequest, into out: inout ByteBuffer) -> Bool {
        for token in request.tokens {
            switch token.flag {
            case UInt8(ascii: "O"):
                guard token.token.readableBytes <= MemcacheRequestDecoder.maxOpaqueLength else { return false }
                out.writeMetaEcho(token.token)
            case UInt8(ascii: "k"):
                out.writeMetaKey(request.key, binary: request.flags.keyIsBinary)
            default:
                break
            }
        }
        return true
    }

    private static func fail(_ message: StaticString, rewindingTo mark: Int, _ out: inout ByteBuffer) {
        out.moveWriterIndex(to: mark)
        out.writeMemcacheLine(message)
    }

    private func writeTTL(_ item: Item, now: UInt32, into out: inout ByteBuffer) {
        out.writeStaticString(" t")
        if item.exptime == 0 {
            out.writeStaticString("-1")
        } else {
            out.writeDecimal(UInt64(item.exptime &- now))
        }
    }

    private mutating func metaDebug(_ request: MetaRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let key = request.key
        store.withStripe(for: key) { stripe in
            guard let slot = stripe.find(key, now: now) else {
                out.writeMemcacheLine("EN")
                return
            }
            let item = stripe[slot]
            out.writeStaticString("ME ")
            if item.state.contains(.binaryKey) {
                var encoded = ByteBuffer()
                encoded.writeMetaKey(item.key, binary: true)
                // ` k<base64> b` → `<base64>`
                out.writeBytes(encoded.readableBytesView.dropFirst(2).dropLast(2))
            } else {
                out.writeImmutableBuffer(item.key)
            }
            out.writeStaticString(" exp=")
            out.writeDecimal(item.exptime == 0 ? Int64(-1) : Int64(now) - Int64(item.exptime))
            out.writeStaticString(" la=")
            out.writeDecimal(UInt64(now &- item.time))
            out.writeStaticString(" cas=")
            out.writeDecimal(item.cas)
            out.writeStaticString(item.state.contains(.fetched) ? " fetch=yes" : " fetch=no")
            out.writeStaticString(" cls=1 size=")
            out.writeDecimal(UInt64(item.size))
            out.writeStaticString("\r\n")
        }
        return Outcome(operation: .metaDebug)
    }

    private mutating func metaGet(_ request: MetaRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let flags = request.flags
        let clock = self.clock
        let store = self.store
        let mark = out.writerIndex
        let result = store.withStripe(for: request.key) { stripe -> (hit: Bool, failed: Bool) in
            var found = stripe.find(request.key, now: now)
            var created = false
            if found == nil, flags.vivifyExptime != nil {
                found = stripe.vivify(request.key, exptime: 0, now: now, cas: store.nextCAS())
                created = found != nil
            }
            guard let slot = found else {
                out.writeStaticString("EN")
                guard Self.writeEchoes(request, into: &out) else {
                    Self.fail(Self.opaqueTooLong, rewindingTo: mark, &out)
                    return (false, true)
                }
                out.writeStaticString("\r\n")
                // `q` hides the miss.
                if flags.noReply { out.moveWriterIndex(to: mark) }
                return (false, false)
            }
            // memcached bumps at once unless a flag needs the item's state from before this
            // request (h, l) or changes it (N, T, R); those bump after answering.
            let locked = flags.reportsOrChangesState
            if !locked, !flags.noUpdate { stripe.bump(slot, now: now) }
            let before = stripe[slot]
            if flags.returnValue {
                out.writeStaticString("VA ")
                out.writeDecimal(UInt64(before.valueLength))
            } else {
                out.writeStaticString("HD")
            }
            var won = false
            for token in request.tokens {
                switch token.flag {
                case UInt8(ascii: "T"):
                    stripe[slot].exptime = clock.expiry(flags.newExptime ?? 0, now: now)
                case UInt8(ascii: "N"):
                    if created {
                        stripe[slot].exptime = clock.expiry(flags.vivifyExptime ?? 0, now: now)
                        won = true
                    }
                case UInt8(ascii: "R"):
                    let item = stripe[slot]
                    let recache = clock.expiry(flags.recacheExptime ?? 0, now: now)
                    if !item.state.contains(.tokenSent), !created, item.exptime != 0, item.exptime < recache {
                        won = true
                    }
                case UInt8(ascii: "s"):
                    out.writeMetaNumber(UInt8(ascii: "s"), UInt64(before.valueLength))
                case UInt8(ascii: "t"):
                    writeTTL(stripe[slot], now: now, into: &out)
                case UInt8(ascii: "c"):
                    out.writeMetaNumber(UInt8(ascii: "c"), before.cas)
                case UInt8(ascii: "f"):
                    out.writeMetaNumber(UInt8(ascii: "f"), UInt64(before.flags))
                case UInt8(ascii: "l"):
                    out.writeMetaNumber(UInt8(ascii: "l"), UInt64(now &- before.time))
                case UInt8(ascii: "h"):
                    out.writeMetaNumber(UInt8(ascii: "h"), before.state.contains(.fetched) ? 1 : 0)
                case UInt8(ascii: "O"):
                    guard token.token.readableBytes <= MemcacheRequestDecoder.maxOpaqueLength else {
                        Self.fail(Self.opaqueTooLong, rewindingTo: mark, &out)
                        return (true, true)
                    }
                    out.writeMetaEcho(token.token)
                case UInt8(ascii: "k"):
                    before.withKeyBytes { out.writeMetaKey(bytes: $0, binary: before.state.contains(.binaryKey)) }
                default:
                    break
                }
            }
            let state = stripe[slot].state
            if state.contains(.tokenSent) { out.writeStaticString(" Z") }
            if state.contains(.stale) {
                out.writeStaticString(" X")
                if !state.contains(.tokenSent) { won = true }
            }
            if won {
                out.writeStaticString(" W")
                stripe[slot].state.insert(.tokenSent)
            }
            out.writeStaticString("\r\n")
            if flags.returnValue {
                before.writeValue(into: &out)
                out.writeStaticString("\r\n")
            }
            if locked, !flags.noUpdate { stripe.bump(slot, now: now) }
            return (true, false)
        }
        if flags.newExptime != nil {
            counters.add(.cmdTouch)
            counters.add(result.hit ? .touchHits : .touchMisses)
        } else {
            counters.add(.cmdGet)
            counters.add(result.hit ? .getHits : .getMisses)
        }
        return Outcome(operation: .metaGet, failed: result.failed)
    }

    private mutating func metaSet(_ request: MetaRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let flags = request.flags
        var mode: ItemStore.StoreMode =
            switch flags.mode {
            case UInt8(ascii: "E"): .add
            case UInt8(ascii: "A"): .append
            case UInt8(ascii: "P"): .prepend
            case UInt8(ascii: "R"): .replace
            default: .set
            }
        // A compare-and-swap unique turns set and replace into cas.
        if flags.compareCAS != nil, mode == .set || mode == .replace { mode = .cas }
        let write = ItemStore.Write(
            mode: mode,
            key: request.key,
            data: request.data ?? ByteBuffer(),
            flags: flags.clientFlags,
            exptime: flags.newExptime.map { clock.expiry($0, now: now) } ?? 0,
            compareCAS: flags.compareCAS ?? 0,
            allowStale: flags.invalidate && mode == .cas,
            binaryKey: flags.keyIsBinary
        )
        let store = self.store
        let outcome = store.withStripe(for: request.key) { $0.store(write, now: now, nextCAS: store.nextCAS) }
        counters.add(.cmdSet)
        let mark = out.writerIndex
        var storedCAS: UInt64 = 0
        switch outcome {
        case .stored(let cas):
            storedCAS = cas
            out.writeStaticString("HD")
        case .notStored:
            out.writeStaticString("NS")
        case .exists:
            out.writeStaticString("EX")
        case .notFound:
            out.writeStaticString("NF")
        case .outOfMemory:
            counters.add(.storeNoMemory)
            out.writeMemcacheLine("SERVER_ERROR out of memory storing object")
            return Outcome(operation: .metaSet, failed: true)
        }
        for token in request.tokens {
            switch token.flag {
            case UInt8(ascii: "O"): out.writeMetaEcho(token.token)
            case UInt8(ascii: "k"): out.writeMetaKey(request.key, binary: flags.keyIsBinary)
            case UInt8(ascii: "c"): out.writeMetaNumber(UInt8(ascii: "c"), storedCAS)
            default: break
            }
        }
        out.writeStaticString("\r\n")
        if flags.noReply, case .stored = outcome { out.moveWriterIndex(to: mark) }
        return Outcome(operation: .metaSet)
    }

    private mutating func metaDelete(_ request: MetaRequest, into out: inout ByteBuffer) -> Outcome {
        let now = clock.now
        let flags = request.flags
        let mark = out.writerIndex
        out.writeStaticString("HD")  // status placeholder, overwritten below
        guard Self.writeEchoes(request, into: &out) else {
            Self.fail(Self.opaqueTooLong, rewindingTo: mark, &out)
            return Outcome(operation: .metaDelete, failed: true)
        }
        out.writeStaticString("\r\n")
        let clock = self.clock
        let store = self.store
        let (status, hidden): (StaticString, Bool) = store.withStripe(for: request.key) { stripe in
            guard let slot = stripe.find(request.key, now: now) else { return ("NF", false) }
            if let compare = flags.compareCAS, stripe[slot].cas != compare { return ("EX", false) }
            if flags.invalidate {
                if let ttl = flags.newExptime { stripe[slot].exptime = clock.expiry(ttl, now: now) }
                stripe[slot].state.insert(.stale)
                stripe[slot].state.remove(.tokenSent)
                stripe[slot].cas = store.nextCAS()
            } else {
                stripe.unlink(slot)
            }
            return ("HD", flags.noReply)
        }
        counters.add(status.utf8Start.pointee == UInt8(ascii: "H") ? .deleteHits : .deleteMisses)
        if hidden {
            out.moveWriterIndex(to: mark)
        } else {
            out.setBytes(UnsafeRawBufferPointer(start: status.utf8Start, count: 2), at: mark)
        }
        return Outcome(operation: .metaDelete)
    }

    private mutating func metaArithmetic(_ request: MetaRequest, into out: inout ByteBuffer) -> Outcome {
        let flags = request.flags
        let increment: Bool
        switch flags.mode {
        case nil, UInt8(ascii: "I"), UInt8(ascii: "+"): increment = true
        case UInt8(ascii: "D"), UInt8(ascii: "-"): increment = false
        default:
            out.writeMemcacheLine("CLIENT_ERROR invalid mode for ma M token")
            return Outcome(operation: .metaArithmetic, failed: true)
        }
        let now = clock.now
        let clock = self.clock
        let store = self.store
        let mark = out.writerIndex
        let failed = store.withStripe(for: request.key) { stripe -> Bool in
            var slot: Int32?
            var digits: [UInt8] = []
            var created = false
            var hidden = false
            switch stripe.addDelta(
                request.key,
                increment: increment,
                delta: flags.delta,
                compareCAS: flags.compareCAS ?? 0,
                now: now,
                nextCAS: store.nextCAS
            ) {
            case .updated(let newDigits, let newSlot):
                slot = newSlot
                digits = newDigits
                hidden = flags.noReply
            case .nonNumeric:
                out.writeMemcacheLine("CLIENT_ERROR cannot increment or decrement non-numeric value")
                return true
            case .outOfMemory:
                out.writeMemcacheLine("SERVER_ERROR out of memory")
                return true
            case .notFound:
                if flags.vivifyExptime != nil {
                    digits = Array(String(flags.initial).utf8)
                    let write = ItemStore.Write(
                        mode: .add,
                        key: request.key,
                        data: ByteBuffer(bytes: digits),
                        flags: 0,
                        exptime: 0,
                        binaryKey: flags.keyIsBinary
                    )
                    if case .stored = stripe.store(write, now: now, nextCAS: store.nextCAS) {
                        slot = stripe.find(request.key, now: now)
                        created = true
                    } else {
                        out.writeStaticString("NS")
                    }
                } else {
                    out.writeStaticString("NF")
                }
            case .casMismatch:
                out.writeStaticString("EX")
            }
            guard let slot else {
                guard Self.writeEchoes(request, into: &out) else {
                    Self.fail(Self.opaqueTooLong, rewindingTo: mark, &out)
                    return true
                }
                out.writeStaticString("\r\n")
                return false
            }
            if flags.returnValue {
                out.writeStaticString("VA ")
                out.writeDecimal(UInt64(digits.count))
            } else {
                out.writeStaticString("HD")
            }
            for token in request.tokens {
                switch token.flag {
                case UInt8(ascii: "c"):
                    out.writeMetaNumber(UInt8(ascii: "c"), stripe[slot].cas)
                case UInt8(ascii: "t"):
                    writeTTL(stripe[slot], now: now, into: &out)
                case UInt8(ascii: "T"):
                    stripe[slot].exptime = clock.expiry(flags.newExptime ?? 0, now: now)
                case UInt8(ascii: "N"):
                    if created { stripe[slot].exptime = clock.expiry(flags.vivifyExptime ?? 0, now: now) }
                case UInt8(ascii: "O"):
                    guard token.token.readableBytes <= MemcacheRequestDecoder.maxOpaqueLength else {
                        Self.fail(Self.opaqueTooLong, rewindingTo: mark, &out)
                        return true
                    }
                    out.writeMetaEcho(token.token)
                case UInt8(ascii: "k"):
                    out.writeMetaKey(request.key, binary: flags.keyIsBinary)
                default:
                    break
                }
            }
            out.writeStaticString("\r\n")
            if flags.returnValue {
                out.writeBytes(digits)
                out.writeStaticString("\r\n")
            }
            if hidden { out.moveWriterIndex(to: mark) }
            return false
        }
        return Outcome(operation: .metaArithmetic, failed: failed)
    }
}
