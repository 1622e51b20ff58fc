import FlotillaCore
import FlotillaMemcache
import FlotillaServer
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Brings shards marked down back, and repairs the keys a shard missed: the proxy's background
/// work, beside the `ShardHealth` it serves. It decides nothing about health itself: the probes
/// are due when `ShardHealth` says so, and it reports what each probe and repair found.
struct ShardRepairer: Sendable {
    let context: ProxyContext
    let addresses: [SocketAddress]
    let group: any EventLoopGroup
    /// The proxy is ready while some shard takes requests, once each was probed at start.
    let readiness: Readiness
    let logger: Logger

    /// Brings back shards marked down, rebuilds shards that restarted, and repairs the keys a shard
    /// that is up missed, until the proxy shuts down.
    ///
    /// A down shard is probed when `ShardHealth` says its probe is due (its backoff: 100 ms
    /// doubling to 2 s, jittered). When it answers, every key it missed is repaired before it
    /// serves again (and once more after, for writes that raced the switch); if some hints were
    /// lost to a full queue it is flushed instead, so that it cannot serve stale data.
    ///
    /// Every shard that is up is asked for its `stats` each `watchInterval`: a new process there
    /// (see `ShardIdentity`) restarted empty, and is rebuilt from its peers before it serves reads;
    /// one that does not answer counts a failure, as a client request would. At start every shard
    /// is asked before the proxy is ready, and one that does not answer is down at once. The proxy
    /// is ready while some shard takes requests. Probes and recoveries run side by side, one at a
    /// time per shard.
    func run() async {
        let busy = BusyShards()
        let watching = WatchConnections()
        defer { watching.closeAll() }
        await withDiscardingTaskGroup { tasks in
            await withDiscardingTaskGroup { first in
                for shard in 0..<addresses.count {
                    first.addTask { await self.watch(shard, connections: watching, atStart: true) }
                }
            }
            updateReadiness()
            var lastWatch = ContinuousClock.now - Self.watchInterval
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                for shard in context.health.dueProbes() {
                    tasks.addTask { await self.restore(shard) }
                }
                if ContinuousClock.now - lastWatch >= Self.watchInterval {
                    lastWatch = .now
                    for shard in 0..<addresses.count where context.health.isReadable(shard) && busy.claim(shard) {
                        tasks.addTask {
                            await self.watch(shard, connections: watching)
                            busy.release(shard)
                        }
                    }
                }
                for shard in context.health.shardsWithHints() where context.health.isReadable(shard) {
                    await repairLive(shard)
                }
                updateReadiness()
                try? await Task.sleep(for: .milliseconds(50))
            }
            tasks.cancelAll()
        }
    }

    /// How often each shard that is up is asked whether it restarted.
    static let watchInterval: Duration = .seconds(1)

    /// Ready while some shard takes requests (a client then has a replica set it can use); not
    /// ready while every shard is down, so that a load balancer sends clients elsewhere.
    private func updateReadiness() {
        guard readiness.listeners["data"] != nil else { return }
        let servable = (0..<addresses.count).contains { context.health.isLive($0) }
        let ready = readiness.current == .ready
        guard servable != ready, readiness.current != .draining else { return }
        readiness.set(ready: servable)
        if servable {
            logger.notice("ready: a shard answers")
        } else {
            logger.warning("not ready: every shard is down")
        }
    }

    /// Asks an up shard which process it is; one that restarted recovers (writes only) while it
    /// is rebuilt from its peers, then serves again.
    private func watch(_ shard: Int, connections: WatchConnections, atStart: Bool = false) async {
        let timeout = context.configuration.shardTimeout
        let restarted: Bool
        var probe: ShardProbe?
        do {
            let open: ShardProbe
            if let kept = connections.take(shard) {
                open = kept
            } else {
                open = try await ShardProbe.connect(to: addresses[shard], group: group, timeout: timeout)
            }
            probe = open
            restarted = try await identify(shard, on: open)
            connections.keep(open, for: shard)
        } catch {
            // A late reply must not be read as the next one's: a new connection next time.
            probe?.close()
            let reason = "stats probe: \(error)"
            if atStart {
                context.health.markUnreachable(shard, reason: reason)
            } else {
                context.health.recordFailure(shard, reason: reason)
            }
            return
        }
        guard restarted, context.health.restarted(shard) else { return }
        var probes = ProbePool(addresses: addresses, group: group, timeout: timeout)
        defer { probes.closeAll() }
        await recover(shard, probes: &probes)
    }

    /// Reads the shard's `stats`, records which process it is; true when it restarted since the
    /// last reading and has peers to be rebuilt from.
    private func identify(_ shard: Int, on probe: ShardProbe) async throws -> Bool {
        let timeout = context.configuration.shardTimeout
        let reply = try await probe.request(statsRequest, expecting: .stats, timeout: timeout)
        guard let identity = ShardIdentity(reply, observedAt: .now) else { return false }
        let restarted = context.rebuilds.observe(shard, identity)
        guard restarted, rebuildsEnabled else { return false }
        logger.warning(
            "shard restarted: rebuilding it from its peers before it serves reads",
            metadata: ["shard": "\(context.configuration.shards[shard].address)", "pid": "\(identity.pid ?? 0)"]
        )
        return true
    }

    /// Whether restarted shards are rebuilt: with a peer to copy from, and a rate above zero.
    var rebuildsEnabled: Bool {
        context.configuration.replicas > 1 && context.configuration.rebuildRate > 0
    }

    /// One probe of a down shard, and its recovery when it answers.
    ///
    /// When the probe answers, the shard *recovers* before it serves: it takes every write of its
    /// keys again at once (so that no write after this point can miss it), serves no reads, and
    /// its hinted keys are repaired (and, when it restarted meanwhile, every key of its peers
    /// copied); only then is it up. A shard that came back while writes still went to the
    /// stand-ins would miss the writes in between; one that served reads before its repair would
    /// serve values older than acknowledged ones.
    private func restore(_ shard: Int) async {
        let timeout = context.configuration.shardTimeout
        var probes = ProbePool(addresses: addresses, group: group, timeout: timeout)
        defer { probes.closeAll() }
        var answered = false
        do {
            _ = try await identify(shard, on: probes.probe(shard))
            if context.health.hintsOverflowed(shard) {
                // Flushed while no client writes reach it, so that nothing acknowledged is flushed.
                logger.warning(
                    "shard missed more writes than the hint queue holds: flushing it before it serves",
                    metadata: ["shard": "\(context.configuration.shards[shard].address)"]
                )
                _ = try await probes.probe(shard).request(flushRequest, expecting: .line, timeout: timeout)
            }
            answered = true
        } catch {
            answered = false
        }
        guard context.health.probed(shard, answered: answered) else { return }
        await recover(shard, probes: &probes)
    }

    /// Repairs a recovering shard: its hints, then (when it restarted) every key its peers hold
    /// for it; then it serves reads again. Any failure puts it down until its next probe.
    private func recover(_ shard: Int, probes: inout ProbePool) async {
        var repaired = 0
        var rounds = 0
        while rounds < Self.recoveryRounds {
            rounds += 1
            let (hints, overflowed) = context.health.takeHints(shard)
            if overflowed {
                // Writes reach it now: it cannot be flushed. Down again; the next probe flushes it.
                for hint in hints { context.health.addHint(shard, key: hint.key) }
                context.health.keepOverflowed(shard)
                context.health.abortRecovery(shard)
                return
            }
            if hints.isEmpty {
                // Done, unless this is the first round: a write routed just before the switch may
                // still be adding its hint.
                if rounds > 1 { break }
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            var start = 0
            while start < hints.count {
                let batch = hints[start..<min(start + Self.repairBatch, hints.count)].map(\.key)
                do {
                    try await repair(batch, on: shard, probes: &probes, removeStandIns: true)
                } catch {
                    for left in hints[start...] { context.health.addHint(shard, key: left.key) }
                    context.health.abortRecovery(shard)
                    return
                }
                repaired += batch.count
                start += batch.count
            }
            guard context.health.isRecovering(shard) else { return }
        }
        if rebuildsEnabled, context.rebuilds.isNeeded(shard) {
            guard await rebuild(shard, probes: &probes) else { return }
        }
        guard context.health.markUp(shard, replayed: repaired) else { return }
        // Hints of writes that failed on it during the repair: it is up, repair them too.
        await repairLive(shard)
    }

    /// Rounds of hint repair while a shard recovers; a write that fails on it meanwhile adds one.
    static let recoveryRounds = 10

    /// Repairs the hints of a shard that is up (writes that failed on it without marking it down).
    private func repairLive(_ shard: Int) async {
        let (hints, overflowed) = context.health.takeHints(shard)
        guard !hints.isEmpty || overflowed else { return }
        var probes = ProbePool(addresses: addresses, group: group, timeout: context.configuration.shardTimeout)
        defer { probes.closeAll() }
        var repaired = 0
        var start = 0
        while start < hints.count {
            let batch = hints[start..<min(start + Self.repairBatch, hints.count)].map(\.key)
            do {
                try await repair(batch, on: shard, probes: &probes, removeStandIns: false)
                repaired += batch.count
            } catch {
                // Still failing: keep the hints; the shard will be marked down or the next pass succeeds.
                for key in batch { context.health.addHint(shard, key: key) }
            }
            start += batch.count
        }
        if overflowed {
            _ = try? await probes.probe(shard).request(
                flushRequest,
                expecting: .line,
                timeout: context.configuration.shardTimeout
            )
        }
        context.health.recordRepaired(shard, count: repaired)
    }

    /// Keys repaired per pipelined batch.
    static let repairBatch = 256

    /// Makes `shard` hold each key's current value: copied from the first live replica that has
    /// it (its other home replicas first, then the stand-ins that served while it was down), or
    /// deleted when none has it. With `removeStandIns`, the stand-ins' copies are deleted after,
    /// so that they cannot resurface as stale values in a later outage. Requests are pipelined per
    /// shard, a batch at a time.
    ///
    /// Client writes reach the shard while this runs (it is up or recovering), and must win:
    /// - the shard's CAS counter is read first (the *watermark*): an item with a higher unique
    ///   was written after the hints were taken, by a client, and is left alone (every write
    ///   the hints stand for came before);
    /// - the shard's unique for the key is read before the source's value, and the copy is
    ///   guarded by it (`C<unique>`, or add mode where the shard has no item): a client write in
    ///   between makes the copy fail;
    /// - the source is read again after: a key whose value changed meanwhile is copied again (a
    ///   few times; a key still changing keeps its hint).
    /// Returns how many keys it wrote or deleted on the shard.
    @discardableResult
    func repair(_ keys: [ByteBuffer], on shard: Int, probes: inout ProbePool, removeStandIns: Bool) async throws -> Int
    {
        var changedOnShard = 0
        let timeout = context.configuration.shardTimeout
        var holders: [ByteBuffer: [Int]] = [:]
        var standIns: [ByteBuffer: [Int]] = [:]
        for key in keys {
            let home = context.homeReplicas(key)
            let live = key.withUnsafeReadableBytes { bytes in
                context.router.replicaSet(for: bytes) { $0 != shard && self.context.health.isLive($0) }
            }
            holders[key] = live.filter { home.contains($0) } + live.filter { !home.contains($0) }
            standIns[key] = live.filter { !home.contains($0) }
        }
        let watermark = try await casWatermark(of: shard, probes: &probes)
        // The uniques of this repair's own copies: above the watermark, but not a client's.
        var copied: [ByteBuffer: UInt64] = [:]
        var pending = keys
        for _ in 0..<4 where !pending.isEmpty {
            // The shard's own unique for each key first: what the copy is guarded by.
            let current = try await probes.probe(shard).pipeline(
                pending.map { ownMeta(.get, $0, flags: "c") },
                expecting: .meta,
                timeout: timeout
            )
            var guards: [ByteBuffer: String] = [:]
            var asking: [ByteBuffer] = []
            for (key, reply) in zip(pending, current) {
                switch Self.casUnique(reply) {
                case .some(let unique) where unique > watermark && copied[key] != unique:
                    continue  // A client wrote it after the hints were taken: it is current.
                case .some(let unique):
                    guards[key] = "C\(unique)"
                case .none:
                    guards[key] = "ME"
                }
                asking.append(key)
            }
            // Each key's value and unique, asking its holders in order, one round per rank.
            var found: [ByteBuffer: (holder: Int, value: MetaReply)] = [:]
            var unresolved = asking
            var rank = 0
            while !unresolved.isEmpty {
                var byHolder: [Int: [ByteBuffer]] = [:]
                for key in unresolved where rank < holders[key, default: []].count {
                    byHolder[holders[key]![rank], default: []].append(key)
                }
                if byHolder.isEmpty { break }
                var stillMissing: [ByteBuffer] = []
                for (holder, asked) in byHolder {
                    let replies = try await probes.probe(holder).pipeline(
                        asked.map { ownMeta(.get, $0, flags: "v f t c") },
                        expecting: .meta,
                        timeout: timeout
                    )
                    for (key, reply) in zip(asked, replies) {
                        if case .meta(let meta) = reply, meta.code == "VA" {
                            found[key] = (holder, meta)
                        } else {
                            stillMissing.append(key)
                        }
                    }
                }
                unresolved = stillMissing
                rank += 1
            }
            // Write the values (or delete the keys) on the shard, each guarded.
            var written: [ByteBuffer] = []
            var writes: [ByteBuffer] = []
            for key in asking {
                let guardFlag = guards[key]!
                if let value = found[key]?.value {
                    writes.append(copyRequest(key, value, condition: guardFlag + " c"))
                    written.append(key)
                } else if guardFlag != "ME" {
                    writes.append(ownMeta(.delete, key, flags: guardFlag))
                    written.append(key)
                }
            }
            let results = try await probes.probe(shard).pipeline(writes, expecting: .meta, timeout: timeout)
            changedOnShard += written.count
            for (key, result) in zip(written, results) {
                if let unique = Self.casUnique(result) { copied[key] = unique }
            }
            // Re-read the sources: a key whose CAS (or presence) changed is copied again.
            var changed: [ByteBuffer] = []
            var bySource: [Int: [ByteBuffer]] = [:]
            for key in asking {
                if let source = found[key]?.holder ?? holders[key]?.first {
                    bySource[source, default: []].append(key)
                }
            }
            for (source, asked) in bySource {
                let replies = try await probes.probe(source).pipeline(
                    asked.map { ownMeta(.get, $0, flags: "c") },
                    expecting: .meta,
                    timeout: timeout
                )
                for (key, reply) in zip(asked, replies) {
                    let now = Self.casUnique(reply)
                    let before = found[key].flatMap { Self.casUnique(.meta($0.value)) }
                    if now != before { changed.append(key) }
                }
            }
            pending = changed
        }
        for key in pending {
            // Still changing under load: keep the hint for the next pass.
            context.health.addHint(shard, key: key)
        }
        guard removeStandIns else { return changedOnShard }
        var deletes: [Int: [ByteBuffer]] = [:]
        for key in keys {
            for standIn in standIns[key, default: []] {
                deletes[standIn, default: []].append(ownMeta(.delete, key, flags: ""))
            }
        }
        for (standIn, requests) in deletes {
            _ = try await probes.probe(standIn).pipeline(requests, expecting: .meta, timeout: timeout)
        }
        return changedOnShard
    }

    /// The shard's CAS counter now: the unique of a throwaway item (deleted at once). Every write
    /// that reaches the shard after this gets a higher unique.
    private func casWatermark(of shard: Int, probes: inout ProbePool) async throws -> UInt64 {
        var set = ByteBuffer()
        MemcacheForwarding.writeOwnMeta(
            .set,
            key: Self.watermarkKey,
            flags: "c T30",
            data: ByteBuffer(string: "x"),
            into: &set
        )
        let replies = try await probes.probe(shard).pipeline(
            [set, ownMeta(.delete, Self.watermarkKey, flags: "")],
            expecting: .meta,
            timeout: context.configuration.shardTimeout
        )
        guard let first = replies.first, let unique = Self.casUnique(first) else {
            throw ProxyConfigurationError("shard gave no CAS unique for the repair watermark")
        }
        return unique
    }

    /// A key no text-protocol client can name (it starts with a NUL byte).
    private static let watermarkKey = ByteBuffer(bytes: Array("\u{0}flotilla-repair-watermark".utf8))

    /// `ms` copying a value read with `mg … v f t`: same data, client flags and remaining TTL.
    private func copyRequest(_ key: ByteBuffer, _ value: MetaReply, condition: String) -> ByteBuffer {
        var flags = condition
        for token in value.flags {
            let text = String(buffer: token)
            if text.hasPrefix("f") { flags += " F" + text.dropFirst() }
            if text.hasPrefix("t"), let ttl = Int(text.dropFirst()), ttl > 0 { flags += " T\(ttl)" }
        }
        var request = ByteBuffer()
        MemcacheForwarding.writeOwnMeta(.set, key: key, flags: flags, data: value.data ?? ByteBuffer(), into: &request)
        return request
    }

    /// The `c<unique>` flag of a meta reply as a number; nil for a miss (or no unique).
    private static func casUnique(_ reply: ShardReply) -> UInt64? {
        guard case .meta(let meta) = reply, meta.code == "VA" || meta.code == "HD" else { return nil }
        for token in meta.flags where token.readableBytesView.first == UInt8(ascii: "c") {
            return UInt64(String(buffer: token).dropFirst())
        }
        return nil
    }

    private var statsRequest: ByteBuffer { ByteBuffer(string: "stats\r\n") }
    private var flushRequest: ByteBuffer { ByteBuffer(string: "flush_all\r\n") }

    /// `mg|md <base64 key> b <flags>\r\n`: base64 so that any key bytes travel safely.
    private func ownMeta(_ command: MetaRequest.Command, _ key: ByteBuffer, flags: String) -> ByteBuffer {
        var request = ByteBuffer()
        MemcacheForwarding.writeOwnMeta(command, key: key, flags: flags, into: &request)
        return request
    }
}

/// The prober's connections, one per shard, opened on first use.
struct ProbePool {
    let addresses: [SocketAddress]
    let group: any EventLoopGroup
    let timeout: Duration
    private var open: [Int: ShardProbe] = [:]

    init(addresses: [SocketAddress], group: any EventLoopGroup, timeout: Duration) {
        self.addresses = addresses
        self.group = group
        self.timeout = timeout
    }

    mutating func probe(_ shard: Int) async throws -> ShardProbe {
        if let probe = open[shard] { return probe }
        let probe = try await ShardProbe.connect(to: addresses[shard], group: group, timeout: timeout)
        open[shard] = probe
        return probe
    }

    func closeAll() {
        for probe in open.values { probe.close() }
    }
}

/// The connections that ask each up shard which process it is, kept from one second to the next.
private final class WatchConnections: Sendable {
    private let open = Mutex<[Int: ShardProbe]>([:])

    /// The shard's connection, taken out until `keep` puts it back (one watch per shard at a time).
    func take(_ shard: Int) -> ShardProbe? {
        open.withLock { $0.removeValue(forKey: shard) }
    }

    func keep(_ probe: ShardProbe, for shard: Int) {
        open.withLock { $0[shard] = probe }
    }

    func closeAll() {
        for probe in open.withLock({ $0.values }) { probe.close() }
    }
}

/// Shards a background task works on now, so that the next pass does not start another.
private final class BusyShards: Sendable {
    private let shards = Mutex<Set<Int>>([])

    /// True when `shard` was free and is now claimed.
    func claim(_ shard: Int) -> Bool {
        shards.withLock { $0.insert(shard).inserted }
    }

    func release(_ shard: Int) {
        _ = shards.withLock { $0.remove(shard) }
    }
}
