import FlotillaCore
import Logging
import NIOCore

/// Rebuilding a shard that restarted empty: every key of its replica sets is copied to it from a
/// peer that holds it, so that it holds N copies again before it serves reads.
extension ShardRepairer {
    /// Copies to `shard` (recovering: it takes client writes, serves no reads) every key its live
    /// peers hold that `shard` is a home replica of, listed with `lru_crawler metadump` and copied
    /// with `repair`'s CAS guards so that a client write always wins over a copy, at most
    /// `rebuildRate` keys per second. Each key is copied from one peer: the first live replica of
    /// its set other than `shard`.
    ///
    /// A peer whose listing or copies fail is tried again from the beginning a second later,
    /// after the others, while the shard still recovers, up to `rebuildAttempts` times; then the
    /// rebuild is abandoned and logged, and the shard serves with what it has if it answers (the
    /// keys whose other copy that peer holds keep one copy). A peer that cannot list its keys at
    /// all (`ERROR`) ends the rebuild at once, the same way. Returns false when the shard went
    /// down meanwhile.
    func rebuild(_ shard: Int, probes: inout ProbePool) async -> Bool {
        let name = context.configuration.shards[shard].address
        let started = ContinuousClock.now
        var pace = RebuildPace(keysPerSecond: context.configuration.rebuildRate, start: started)
        context.rebuilds.begin(shard)
        logger.notice("shard rebuild started", metadata: ["shard": "\(name)"])
        var copied = 0
        var pending = Array((0..<addresses.count).filter { $0 != shard })
        for attempt in 1...Self.rebuildAttempts where !pending.isEmpty {
            if attempt > 1 { try? await Task.sleep(for: .seconds(1)) }
            var failed: [Int] = []
            for peer in pending where context.health.isLive(peer) {
                let peerName = context.configuration.shards[peer].address
                do {
                    copied += try await copyKeys(of: peer, to: shard, probes: &probes, pace: &pace)
                } catch let failure as MetadumpReader.Failure where failure.unsupported {
                    logger.error(
                        "shard rebuild impossible: a peer cannot list its keys; the shard serves with the writes it missed only",
                        metadata: ["shard": "\(name)", "peer": "\(peerName)", "error": "\(failure)"]
                    )
                    context.rebuilds.stopped(shard, reason: "\(peerName): \(failure)", abandoned: true)
                    return context.health.isRecovering(shard)
                } catch {
                    guard context.health.isRecovering(shard) else {
                        context.rebuilds.stopped(shard, reason: "the shard went down", abandoned: false)
                        return false
                    }
                    logger.warning(
                        "shard rebuild stopped on a peer: it is listed again from the beginning",
                        metadata: [
                            "shard": "\(name)", "peer": "\(peerName)", "error": "\(error)", "attempt": "\(attempt)",
                        ]
                    )
                    context.rebuilds.peerFailed(shard, reason: "\(peerName): \(error)")
                    failed.append(peer)
                }
            }
            pending = failed
        }
        guard pending.isEmpty else {
            // The shard itself may be what failed: it serves again only if it answers.
            let answers = await ShardProbe.answers(
                at: addresses[shard],
                group: group,
                timeout: context.configuration.shardTimeout
            )
            guard answers, context.health.isRecovering(shard) else {
                context.rebuilds.stopped(shard, reason: "the shard does not answer", abandoned: false)
                context.health.abortRecovery(shard)
                return false
            }
            logger.error(
                "shard rebuild abandoned: the keys whose other copy a failing peer holds keep one copy",
                metadata: [
                    "shard": "\(name)", "attempts": "\(Self.rebuildAttempts)",
                    "peers": "\(pending.map { context.configuration.shards[$0].address })",
                ]
            )
            context.rebuilds.stopped(
                shard,
                reason: "abandoned after \(Self.rebuildAttempts) attempts",
                abandoned: true
            )
            return true
        }
        let elapsed = ContinuousClock.now - started
        context.rebuilds.finish(shard, after: elapsed)
        logger.notice(
            "shard rebuilt",
            metadata: ["shard": "\(name)", "keys-copied": "\(copied)", "took": "\(DurationText.format(elapsed))"]
        )
        return true
    }

    /// Times each peer is listed before the rebuild is abandoned.
    static let rebuildAttempts = 5

    /// Lists `peer`'s keys and copies those `shard` should hold and `peer` is the source of.
    private func copyKeys(
        of peer: Int,
        to shard: Int,
        probes: inout ProbePool,
        pace: inout RebuildPace
    ) async throws -> Int {
        let timeout = context.configuration.shardTimeout
        let reader = try await MetadumpReader.start(at: addresses[peer], group: group, timeout: timeout)
        defer { reader.close() }
        var copied = 0
        var batch: [ByteBuffer] = []
        var listed = true
        while listed {
            let keys = try await reader.next(timeout: Self.listingTimeout) ?? []
            listed = !keys.isEmpty
            for key in keys where isSource(peer, of: key, for: shard) { batch.append(key) }
            var start = 0
            while batch.count - start >= Self.repairBatch || (!listed && start < batch.count) {
                let end = min(start + Self.repairBatch, batch.count)
                try await pace.wait(forKeys: end - start)
                let written = try await repair(
                    Array(batch[start..<end]),
                    on: shard,
                    probes: &probes,
                    removeStandIns: false
                )
                guard context.health.isRecovering(shard) else {
                    throw MetadumpReader.Failure(description: "the shard failed during its rebuild")
                }
                copied += written
                context.rebuilds.progress(shard, scanned: 0, copied: written)
                start = end
            }
            batch.removeFirst(start)
            context.rebuilds.progress(shard, scanned: keys.count, copied: 0)
        }
        return copied
    }

    /// How long a peer may take to list its next keys (memcached's crawler walks its LRUs in the
    /// background, with pauses).
    static let listingTimeout: Duration = .seconds(10)

    /// Whether `shard` is a home replica of `key` and `peer` the first live one of the others:
    /// each key is copied from one peer, once.
    private func isSource(_ peer: Int, of key: ByteBuffer, for shard: Int) -> Bool {
        let home = context.homeReplicas(key)
        guard home.contains(shard) else { return false }
        return home.first { $0 != shard && context.health.isLive($0) } == peer
    }
}

/// Keeps a rebuild at its rate: each batch of keys waits until the rate allows it.
struct RebuildPace {
    let keysPerSecond: Int
    let start: ContinuousClock.Instant
    private var keys = 0

    init(keysPerSecond: Int, start: ContinuousClock.Instant) {
        self.keysPerSecond = max(1, keysPerSecond)
        self.start = start
    }

    /// Waits until the rate lets `count` more keys go, after the keys before them.
    mutating func wait(forKeys count: Int) async throws {
        let due = start + .seconds(Double(keys) / Double(keysPerSecond))
        keys += count
        if due > .now { try await Task.sleep(until: due, clock: .continuous) }
    }
}
