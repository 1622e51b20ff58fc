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
    /// Returns true when every live peer was listed to the end (or none can list its keys: the
    /// shard then serves with what its hints gave it, as without rebuilds); false when the shard
    /// or a peer failed, to be tried again from the start with the shard's next recovery.
    func rebuild(_ shard: Int, probes: inout ProbePool) async -> Bool {
        let name = context.configuration.shards[shard].address
        let started = ContinuousClock.now
        var pace = RebuildPace(keysPerSecond: context.configuration.rebuildRate, start: started)
        context.rebuilds.begin(shard)
        logger.notice("shard rebuild started", metadata: ["shard": "\(name)"])
        var copied = 0
        for peer in 0..<addresses.count where peer != shard && context.health.isLive(peer) {
            do {
                copied += try await copyKeys(of: peer, to: shard, probes: &probes, pace: &pace)
            } catch let failure as MetadumpReader.Failure where failure.unsupported {
                let peerName = context.configuration.shards[peer].address
                logger.error(
                    "shard rebuild impossible: a peer cannot list its keys; the shard serves with the writes it missed only",
                    metadata: ["shard": "\(name)", "peer": "\(peerName)", "error": "\(failure)"]
                )
                context.rebuilds.fail(shard, reason: "\(peerName): \(failure)", giveUp: true)
                return true
            } catch {
                let peerName = context.configuration.shards[peer].address
                logger.warning(
                    "shard rebuild stopped: it starts again with the shard's next recovery",
                    metadata: ["shard": "\(name)", "peer": "\(peerName)", "error": "\(error)"]
                )
                context.rebuilds.fail(shard, reason: "\(peerName): \(error)")
                return false
            }
        }
        let elapsed = ContinuousClock.now - started
        context.rebuilds.finish(shard, after: elapsed)
        logger.notice(
            "shard rebuilt",
            metadata: ["shard": "\(name)", "keys-copied": "\(copied)", "took": "\(DurationText.format(elapsed))"]
        )
        return true
    }

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
