extension DemoResult {
    /// The closing table: each phase's load, each shard's share of the requests, the outage.
    var text: String {
        var lines = ["", "What happened"]
        let killed = "shard \(killedShard + 1) (\(shards[killedShard]))"

        var load: [[String]] = [["phase", "time", "throughput", "p50", "p99", "errors", "hit rate", "fallback reads"]]
        for (index, phase) in phases.enumerated() {
            load.append([
                "\(index + 1) \(phase.name)",
                DemoFormat.seconds(phase.seconds),
                DemoFormat.grouped(phase.throughput) + " req/s",
                DemoFormat.latency(microseconds: phase.p50Us),
                DemoFormat.latency(microseconds: phase.p99Us),
                DemoFormat.grouped(Double(phase.errors)),
                phase.hitRate.map { DemoFormat.fixed(100 * $0, digits: 1) + " %" } ?? "-",
                DemoFormat.grouped(Double(phase.fallbackReads)),
            ])
        }
        lines += Self.table(load, rightAligned: 1...7)
        for phase in phases where !phase.errorsByKind.isEmpty {
            let kinds = phase.errorsByKind.sorted { $0.value > $1.value }
                .map { "\($0.key) \(DemoFormat.grouped(Double($0.value)))" }
            lines.append("errors in \(phase.name): \(kinds.joined(separator: ", "))")
        }

        lines += ["", "Share of the shards' requests (cmd_get + cmd_set), per phase"]
        var shares: [[String]] = [["shard"] + phases.map(\.name)]
        for (index, address) in shards.enumerated() {
            var row = ["\(index + 1) \(address)" + (index == killedShard ? " (killed)" : "")]
            for phase in phases {
                let total = phase.shardRequests.reduce(UInt64(0)) { $0 + ($1 ?? 0) }
                row.append(phase.shardRequests[index].map { DemoFormat.percent(Double($0), of: Double(total)) } ?? "?")
            }
            shares.append(row)
        }
        lines += Self.table(shares, rightAligned: 1...phases.count)

        lines.append("")
        if let down = markedDownAfterSeconds {
            lines.append("\(killed): SIGKILL; the proxy marked it down \(DemoFormat.fixed(down, digits: 2)) s later")
        } else {
            lines.append("\(killed): SIGKILL; the proxy never marked it down")
        }
        if let back = backAfterSeconds {
            lines.append(
                "restarted empty on the same port; the proxy marked it up \(DemoFormat.fixed(back, digits: 2)) s later"
            )
        } else {
            lines.append("restarted empty on the same port; the proxy did not take it back")
        }
        let queued = phases.reduce(UInt64(0)) { $0 + $1.hintsQueued }
        lines.append(
            "hinted handoff: \(DemoFormat.grouped(Double(queued))) writes it missed while down were kept as hints; "
                + "\(DemoFormat.grouped(Double(hintsReplayed))) hints replayed to it"
        )
        if hintsPending > 0 {
            lines.append(
                "hints still queued for it at the end, not replayed: \(DemoFormat.grouped(Double(hintsPending)))"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// Columns padded to their widest cell, two spaces apart, a rule under the header.
    private static func table(_ rows: [[String]], rightAligned: ClosedRange<Int>) -> [String] {
        guard let header = rows.first else { return [] }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        func render(_ row: [String]) -> String {
            row.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - row[column].count)
                return rightAligned.contains(column) ? padding + row[column] : row[column] + padding
            }
            .joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return [render(header), rule] + rows.dropFirst().map(render)
    }
}
