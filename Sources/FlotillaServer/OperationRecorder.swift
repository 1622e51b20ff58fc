import Histogram
import NIOCore

/// Per-operation request counts, errors and latency histograms (HdrHistogram), kept per event
/// loop so that recording on the hot path takes no lock: each loop writes only its own shard,
/// and a status read visits every loop to merge them.
public final class OperationRecorder: Sendable {
    /// The operations, in the order their indices are recorded with.
    public let operations: [String]
    private let shards: [ObjectIdentifier: NIOLoopBoundBox<Shard>]
    private let loops: [any EventLoop]

    /// Latencies are recorded in nanoseconds up to this bound (larger ones are clamped).
    static let highestTrackableNanoseconds: UInt64 = 60_000_000_000

    /// Counters and histograms of one event loop. Use only on that loop.
    public final class Shard {
        var histograms: [Histogram<UInt64>]
        var counts: [UInt64]
        var errors: [UInt64]
        /// Recorded nanoseconds, summed: the exact `_sum` of the Prometheus histogram.
        var sums: [UInt64]

        init(operationCount: Int) {
            let histogram = Histogram<UInt64>(
                lowestDiscernibleValue: 1,
                highestTrackableValue: OperationRecorder.highestTrackableNanoseconds,
                numberOfSignificantValueDigits: .two
            )
            self.histograms = Array(repeating: histogram, count: operationCount)
            self.counts = Array(repeating: 0, count: operationCount)
            self.errors = Array(repeating: 0, count: operationCount)
            self.sums = Array(repeating: 0, count: operationCount)
        }

        /// Records one request of operation `operation` that took `nanoseconds`.
        @inline(__always)
        public func record(_ operation: Int, nanoseconds: UInt64, failed: Bool) {
            counts[operation] &+= 1
            if failed { errors[operation] &+= 1 }
            let clamped = min(max(nanoseconds, 1), OperationRecorder.highestTrackableNanoseconds)
            sums[operation] &+= clamped
            _ = histograms[operation].record(clamped)
        }
    }

    public init(operations: [String], group: any EventLoopGroup) {
        self.operations = operations
        var shards: [ObjectIdentifier: NIOLoopBoundBox<Shard>] = [:]
        var loops: [any EventLoop] = []
        for loop in group.makeIterator() {
            loops.append(loop)
            shards[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(
                Shard(operationCount: operations.count),
                eventLoop: loop
            )
        }
        self.shards = shards
        self.loops = loops
    }

    /// The shard of `loop`; call it on that loop (from a channel's pipeline, for instance).
    public func shard(on loop: any EventLoop) -> Shard {
        guard let box = shards[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop is not part of the recorder's group")
        }
        return box.value
    }

    /// Requests per operation since start, summed over every event loop: the counters only, for
    /// the once-a-second rate sampling. (A snapshot copies every histogram, which the loop must
    /// then copy again on its next record, since the copy shares its storage.)
    public func totals() async -> [UInt64] {
        var totals = Array(repeating: UInt64(0), count: operations.count)
        for loop in loops {
            guard let box = shards[ObjectIdentifier(loop)] else { continue }
            guard let counts = try? await loop.submit({ box.value.counts }).get() else { continue }
            for index in totals.indices { totals[index] &+= counts[index] }
        }
        return totals
    }

    /// Totals since start, merged over every event loop.
    public func snapshot() async -> [OperationSnapshot] {
        var merged = (0..<operations.count).map { OperationSnapshot(name: operations[$0]) }
        for loop in loops {
            guard let box = shards[ObjectIdentifier(loop)] else { continue }
            let copy = try? await loop.submit { () -> [OperationSnapshot] in
                let shard = box.value
                return (0..<shard.counts.count).map { index in
                    OperationSnapshot(
                        name: "",
                        count: shard.counts[index],
                        errors: shard.errors[index],
                        sumNanoseconds: shard.sums[index],
                        histogram: shard.histograms[index]
                    )
                }
            }.get()
            guard let copy else { continue }
            for index in merged.indices {
                merged[index].count += copy[index].count
                merged[index].errors += copy[index].errors
                merged[index].sumNanoseconds &+= copy[index].sumNanoseconds
                merged[index].histogram.add(copy[index].histogram)
            }
        }
        return merged
    }
}

/// Totals of one operation at one moment.
public struct OperationSnapshot: Sendable {
    public var name: String
    public var count: UInt64 = 0
    public var errors: UInt64 = 0
    /// Every recorded latency, summed, in nanoseconds.
    public var sumNanoseconds: UInt64 = 0
    public var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1,
        highestTrackableValue: OperationRecorder.highestTrackableNanoseconds,
        numberOfSignificantValueDigits: .two
    )

    /// Latency at `percentile` (0–100), in microseconds; 0 when nothing was recorded.
    public func latencyMicroseconds(_ percentile: Double) -> Double {
        guard histogram.totalCount > 0 else { return 0 }
        let nanoseconds = percentile >= 100 ? histogram.max : histogram.valueAtPercentile(percentile)
        return Double(nanoseconds) / 1_000
    }

    public var successRatio: Double {
        count == 0 ? 1 : Double(count - errors) / Double(count)
    }
}
