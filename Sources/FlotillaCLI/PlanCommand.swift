import ArgumentParser
import FlotillaCore
import Foundation

/// `flotilla plan`: the capacity arithmetic of the course, as a calculator.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Capacity arithmetic: shards and hit rates, scatter/gather tail latency, work-queue sizing.",
        discussion: """
            Pure calculations, no network: each subcommand prints a small table, or JSON with --json.

            Examples:
              flotilla plan shards --data 400GB --rps 10000 --rps-per-node 1000 --cache-per-node 32GB
              flotilla plan scatter --leaf-p 0.99 --leaves 5,10,50,100 --root-target 0.99
              flotilla plan queue --arrival 100/s --service 50ms --wait-target 10ms
            """,
        subcommands: [Shards.self, Scatter.self, Queue.self]
    )

    /// `flotilla plan shards`.
    struct Shards: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Nodes for a load, hit rate unsharded vs sharded, and the hot-shard load under skew."
        )

        @Option(help: "Size of the whole data set, e.g. 400GB.", transform: parseByteSize)
        var data: ByteSize
        @Option(help: "Requests per second to serve.")
        var rps: Double
        @Option(help: "Requests per second one node serves.")
        var rpsPerNode: Double
        @Option(help: "Cache memory per node, e.g. 32GB.", transform: parseByteSize)
        var cachePerNode: ByteSize
        @Option(help: "Copies of each shard.")
        var replicas = 1
        @Option(help: "Key popularity: uniform, or zipf:S with exponent S (default: uniform).", transform: parseAccess)
        var access: ShardPlan.Access = .uniform
        @Option(help: "Number of equally sized keys in the data.")
        var keys = 1_000_000
        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func validate() throws { _ = try makePlan() }

        func makePlan() throws -> ShardPlan {
            var input = ShardPlan.Input(
                dataBytes: Double(data.bytes),
                requestsPerSecond: rps,
                requestsPerSecondPerNode: rpsPerNode,
                cacheBytesPerNode: Double(cachePerNode.bytes)
            )
            input.replicas = replicas
            input.access = access
            input.keys = keys
            return try validated { () throws(ShardPlan.InputError) in try ShardPlan(input) }
        }

        func run() throws {
            let plan = try makePlan().compute()
            if json { return try printJSON(plan) }
            let accessText: String
            switch access {
            case .uniform: accessText = "uniform"
            case .zipf(let exponent): accessText = "zipf, S = \(exponent), over \(keys) keys"
            }
            let rows = [
                ["nodes for the load", "\(plan.nodes) nodes"],
                ["cache memory, all nodes", bytes(plan.totalCacheBytes)],
                [
                    "unique data cached, sharded",
                    bytes(plan.uniqueCacheBytes) + " (\(replicas) cop\(replicas == 1 ? "y" : "ies") each)",
                ],
                ["nodes to cache everything", "\(plan.nodesForFullCache) nodes"],
                ["hit rate, unsharded", percent(plan.hitRateUnsharded)],
                ["hit rate, sharded", percent(plan.hitRateSharded)],
                ["hottest key's share of requests", percent(plan.hottestKeyShare)],
                ["hottest node load / mean", String(format: "%.3f×", plan.hottestNodeLoadRatio)],
                ["hottest node load", String(format: "%.0f req/s", plan.hottestNodeRequestsPerSecond)],
            ]
            print("Shards for \(bytes(Double(data.bytes))) at \(Int(rps)) req/s, access \(accessText)")
            print(table(nil, rows))
            if plan.hottestNodeRequestsPerSecond > rpsPerNode {
                print(
                    "Warning: uniform data is not uniform access; the hottest node is past its \(Int(rpsPerNode)) req/s."
                )
            }
        }
    }

    /// `flotilla plan scatter`.
    struct Scatter: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Chance a scatter/gather request is slow, 1 − p^N, and the per-leaf percentile a root target needs."
        )

        @Option(help: "Chance one leaf answers within the deadline, in (0, 1], e.g. 0.99.")
        var leafP: Double
        @Option(help: "Leaf counts, comma-separated, e.g. 5,10,50,100.", transform: parseCounts)
        var leaves: [[Int]] = []
        @Option(help: "Share of root requests that must be fast, in (0, 1], e.g. 0.99.")
        var rootTarget: Double?
        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func validate() throws { _ = try makePlan() }

        func makePlan() throws -> ScatterPlan {
            let input = ScatterPlan.Input(
                leafProbability: leafP,
                leafCounts: leaves.flatMap { $0 },
                rootTarget: rootTarget
            )
            return try validated { () throws(ScatterPlan.InputError) in try ScatterPlan(input) }
        }

        func run() throws {
            let plan = try makePlan().compute()
            if json { return try printJSON(plan) }
            var header = ["leaves", "all fast", "slow"]
            if rootTarget != nil { header.append("leaf p needed") }
            let rows = plan.rows.map { row in
                [
                    "\(row.leaves)", percent(row.fastProbability), percent(row.slowProbability),
                ] + (row.requiredLeafProbability.map { [String(format: "%.6f", $0)] } ?? [])
            }
            print("Scatter/gather with leaf p = \(leafP)")
            print(table(header, rows))
            if let target = rootTarget {
                switch plan.maxLeavesForTarget {
                case nil: print("Leaves that are never slow allow any fan-out.")
                case 0:
                    print(
                        "No fan-out meets a root target of \(percent(target)): one leaf alone is fast \(percent(leafP))."
                    )
                case let most?:
                    print("A root target of \(percent(target)) fast allows at most \(most) leaves at p = \(leafP).")
                }
            }
        }
    }

    /// `flotilla plan queue`.
    struct Queue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "M/M/c work queue: wait, utilisation, workers for a wait target, backlog growth."
        )

        @Option(help: "Arrival rate, e.g. 100/s, 6000/min or 100.", transform: parseRate)
        var arrival: Double
        @Option(help: "Mean service time of one job, e.g. 50ms.", transform: parseDuration)
        var service: Duration
        @Option(help: "Workers (default: the fewest that meet the wait target, or keep up).")
        var workers: Int?
        @Option(help: "Longest acceptable mean wait, e.g. 10ms.", transform: parseDuration)
        var waitTarget: Duration?
        @Option(help: "Jobs the queue holds, to time a growing backlog.")
        var capacity: Int?
        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func validate() throws { _ = try makePlan() }

        func makePlan() throws -> QueuePlan {
            let input = QueuePlan.Input(
                arrivalRate: arrival,
                serviceSeconds: service.inSeconds,
                workers: workers,
                waitTargetSeconds: waitTarget.map(\.inSeconds),
                capacity: capacity
            )
            return try validated { () throws(QueuePlan.InputError) in try QueuePlan(input) }
        }

        func run() throws {
            let plan = try makePlan().compute()
            if json { return try printJSON(plan) }
            var rows = [
                ["offered load a = λS", String(format: "%.3f workers busy", plan.offeredLoad)],
                ["workers c", "\(plan.workers)" + (workers == nil ? " (sized)" : "")],
                ["utilisation ρ", percent(plan.utilisation)],
            ]
            func add(_ label: String, _ value: String?) { if let value { rows.append([label, value]) } }
            add("chance a job waits", plan.waitProbability.map(percent))
            add("mean wait Wq", plan.meanWaitSeconds.map(time))
            add("mean response Wq + S", plan.meanResponseSeconds.map(time))
            add("mean jobs waiting", plan.meanQueueLength.map { String(format: "%.3f jobs", $0) })
            add(waitTarget == nil ? "workers to keep up" : "workers for the target", plan.workersNeeded.map { "\($0)" })
            add("backlog growth", plan.backlogGrowthPerSecond.map { String(format: "%.3f jobs/s", $0) })
            add("time to fill capacity", plan.secondsToCapacity.map(time))
            print(String(format: "Queue: %g jobs/s, ", arrival) + "service \(DurationText.format(service))")
            print(table(nil, rows))
            print(plan.summary)
        }
    }
}

/// Runs a core constructor, turning its input error into the parser's usage error.
private func validated<Plan, Failure: Error & CustomStringConvertible>(
    _ make: () throws(Failure) -> Plan
) throws -> Plan {
    do {
        return try make()
    } catch {
        throw ValidationError(error.description)
    }
}

private func parseAccess(_ text: String) throws -> ShardPlan.Access {
    let lowered = text.lowercased()
    if lowered == "uniform" { return .uniform }
    if lowered == "zipf" { return .zipf(exponent: 1) }
    if lowered.hasPrefix("zipf:"), let exponent = Double(lowered.dropFirst("zipf:".count)) {
        return .zipf(exponent: exponent)
    }
    throw ValidationError("'\(text)' is not an access pattern: use uniform or zipf:S, e.g. zipf:1.1")
}

private func parseCounts(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false)
    let counts = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !counts.isEmpty, counts.count == parts.count else {
        throw ValidationError("'\(text)' is not a comma-separated list of leaf counts such as 5,10,50,100")
    }
    return counts
}

private func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// A fraction as a percentage with three significant digits: 8.00 %, 39.5 %, 0.0100 %.
private func percent(_ fraction: Double) -> String {
    let value = fraction * 100
    let decimals = value >= 10 ? 1 : value >= 1 ? 2 : value >= 0.01 || value == 0 ? 3 : 5
    return String(format: "%.\(decimals)f %%", value)
}

/// Decimal units, as the course counts them (400 GB of data, 32 GB per node).
private func bytes(_ count: Double) -> String {
    let units: [(String, Double)] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)]
    guard let (unit, scale) = units.first(where: { count >= $0.1 }) else { return String(format: "%.0f B", count) }
    return String(format: "%g ", (count / scale * 10).rounded() / 10) + unit
}

private func time(_ seconds: Double) -> String {
    let text = DurationText.formatMicroseconds(seconds * 1e6)
    return seconds >= 3600 ? text + String(format: " (%.1f h)", seconds / 3600) : text
}

/// Left-aligned first column, right-aligned numbers, two spaces between.
private func table(_ header: [String]?, _ rows: [[String]]) -> String {
    let all = (header.map { [$0] } ?? []) + rows
    let widths = (all.first ?? []).indices.map { column in
        all.map { $0.count > column ? $0[column].count : 0 }.max() ?? 0
    }
    return all.map { row in
        row.indices.map { column in
            let pad = String(repeating: " ", count: widths[column] - row[column].count)
            return column == 0 ? row[column] + pad : pad + row[column]
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}
