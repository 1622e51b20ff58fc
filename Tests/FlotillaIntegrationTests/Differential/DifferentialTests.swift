import FlotillaTestSupport
import Foundation
import Testing

/// Differential tests: the same seeded command stream goes to a real memcached and to a second server, split at
/// random byte boundaries, and the normalized replies must agree batch by batch.
///
/// `memcachedAgainstMemcached` proves the harness itself (generator framing, normalizer, chunked delivery): two
/// memcached instances must always agree. `flotillaAgainstMemcached` is the real test.
///
/// Tunables (environment): `DIFF_COMMANDS` (commands per seed, default 10000), `DIFF_SEEDS` (comma-separated,
/// overrides the built-in seeds), `DIFF_REPORT` (a file that receives every mismatch report as well), `DIFF_TRACE`
/// (a file that receives every batch and both replies, for tracing a mismatch back to its cause).
@Suite(
    "Differential: memcached protocol",
    .serialized,
    .enabled(if: PeerProcess.memcachedTestsEnabled, Comment(rawValue: PeerProcess.memcachedMissingMessage))
)
struct DifferentialTests {
    static let seeds: [UInt64] = {
        if let list = ProcessInfo.processInfo.environment["DIFF_SEEDS"] {
            let parsed = list.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
            if !parsed.isEmpty { return parsed }
        }
        return [1, 2, 3, 0xF107_111A]
    }()

    static var commandsPerRun: Int {
        ProcessInfo.processInfo.environment["DIFF_COMMANDS"].flatMap(Int.init) ?? 10_000
    }

    @Test("two memcached instances agree (validates the harness)", arguments: seeds)
    func memcachedAgainstMemcached(seed: UInt64) throws {
        guard PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
            return
        }
        try PeerProcess.withMemcached { referencePort in
            try PeerProcess.withMemcached { candidatePort in
                var run = try DifferentialRun(
                    seed: seed,
                    referencePort: referencePort,
                    candidatePort: candidatePort,
                    candidateName: "memcached#2"
                )
                try run.execute(commands: Self.commandsPerRun)
            }
        }
    }

    @Test("flotilla cache agrees with memcached", arguments: seeds)
    func flotillaAgainstMemcached(seed: UInt64) throws {
        guard PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
            return
        }
        try PeerProcess.withMemcached(memoryMegabytes: 64) { referencePort in
            try PeerProcess.withFlotilla(extraArguments: ["--memory", "64MiB"]) { flotilla in
                var run = try DifferentialRun(
                    seed: seed,
                    referencePort: referencePort,
                    candidatePort: flotilla.dataPort,
                    candidateName: "flotilla"
                )
                run.checksStatNames = true
                try run.execute(commands: Self.commandsPerRun)
            }
        }
    }
}

/// One seeded differential run between a reference memcached and a candidate server.
private struct DifferentialRun {
    typealias Side = DifferentialSide

    let seed: UInt64
    var generator: CommandGenerator
    let reference: Side
    let candidate: Side
    private var pair: DifferentialPair { DifferentialPair(seed: seed, reference: reference, candidate: candidate) }
    var checksStatNames = false
    private var mismatches = 0
    private static let maxMismatches = 25
    private static let runTimeLimit = Duration.seconds(600)
    private static let sentinel = Array("mn\r\n".utf8)
    private static let sentinelReply = Array("MN\r\n".utf8)

    init(seed: UInt64, referencePort: UInt16, candidatePort: UInt16, candidateName: String) throws {
        self.seed = seed
        generator = CommandGenerator(seed: seed)
        reference = try Side(name: "memcached", port: referencePort)
        candidate = try Side(name: candidateName, port: candidatePort)
    }

    mutating func execute(commands total: Int) throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: Self.runTimeLimit)
        var sent = 0
        var batchNumber = 0
        while sent < total {
            if clock.now >= deadline {
                Issue.record("seed \(seed): run exceeded \(Self.runTimeLimit) after \(sent) commands")
                return
            }
            let batch = generator.nextBatch()
            sent += batch.count
            batchNumber += 1
            let length = batch.reduce(Self.sentinel.count) { $0 + pair.render($1, for: reference).count }
            let plan = generator.chunkPlan(length: length)
            let referenceReply = exchange(batch, on: reference, plan: plan)
            let candidateReply = exchange(batch, on: candidate, plan: plan)
            let referenceNormal = ReplyNormalizer.normalize(referenceReply.bytes)
            let candidateNormal = ReplyNormalizer.normalize(candidateReply.bytes)
            if checksStatNames {
                let missing = ReplyNormalizer.missingStatNames(candidateNormal)
                if !missing.isEmpty {
                    Issue.record("seed \(seed): \(candidate.name) stats lacks \(missing.joined(separator: ", "))")
                }
            }
            if let path = ProcessInfo.processInfo.environment["DIFF_TRACE"] {
                let commands = batch.map { ReplyNormalizer.escape(pair.render($0, for: reference)) }
                let trace = """
                    seed \(seed) batch \(batchNumber)
                    \(commands.map { "  " + $0 }.joined(separator: "\n"))
                    = \(ReplyNormalizer.escape(referenceReply.bytes))
                    ? \(ReplyNormalizer.escape(candidateReply.bytes))

                    """
                Self.append(trace, to: path)
            }
            let agrees =
                referenceNormal.agrees(with: candidateNormal) && referenceReply.outcome == candidateReply.outcome
            if !agrees {
                report(
                    batchNumber: batchNumber,
                    batch: batch,
                    reference: referenceReply,
                    candidate: candidateReply,
                    referenceNormal: referenceNormal,
                    candidateNormal: candidateNormal
                )
                mismatches += 1
                if mismatches >= Self.maxMismatches {
                    Issue.record("seed \(seed): stopping after \(mismatches) mismatching batches")
                    return
                }
                // Start both servers from the same empty state again so later batches are still meaningful.
                try pair.resynchronize()
                continue
            }
            if let key = batch.last?.fetchesCasOfKey {
                pair.recordCas(of: key, from: referenceReply.bytes, side: reference)
                pair.recordCas(of: key, from: candidateReply.bytes, side: candidate)
            }
            if batch.last?.closesConnection == true || referenceReply.outcome == .closed {
                try reference.reconnect()
                try candidate.reconnect()
            }
        }
        print("differential seed \(seed): \(sent) commands in \(batchNumber) batches, \(mismatches) mismatches")
    }

    /// A batch's reply and how the read ended.
    struct Reply {
        var bytes: [UInt8]
        var outcome: WireClient.ReadOutcome
    }

    /// Sends a batch (plus the `mn` sentinel unless it ends in `quit`) and reads its complete reply.
    private func exchange(
        _ batch: [CommandGenerator.Command],
        on side: Side,
        plan: CommandGenerator.ChunkPlan
    ) -> Reply {
        var bytes = batch.flatMap { pair.render($0, for: side) }
        let quits = batch.last?.closesConnection == true
        if !quits { bytes += Self.sentinel }
        let expectedMN = batch.reduce(0) { $0 + $1.expectedMN } + (quits ? 0 : 1)
        side.client.send(bytes, chunkSizes: plan.sizes, pauseMicroseconds: plan.pausesMicroseconds)
        // A quit reply is complete only when the server closes; otherwise when the sentinel's MN has arrived.
        let result = side.client.read(timeout: .seconds(quits ? 3 : 2)) { received in
            !quits && received.suffix(4).elementsEqual(Self.sentinelReply) && Self.countMN(received) >= expectedMN
        }
        return Reply(bytes: result.bytes, outcome: result.outcome)
    }

    /// Counts reply lines that are exactly `MN`; stored values are lowercase, so no data line can be one.
    private static func countMN(_ bytes: [UInt8]) -> Int {
        var count = 0
        var lineStart = 0
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 {
                if index - lineStart == 2 && bytes[lineStart] == 77 && bytes[lineStart + 1] == 78 { count += 1 }
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        return count
    }

    private func report(
        batchNumber: Int,
        batch: [CommandGenerator.Command],
        reference: Reply,
        candidate: Reply,
        referenceNormal: ReplyNormalizer.Normalized,
        candidateNormal: ReplyNormalizer.Normalized
    ) {
        func truncated(_ text: String) -> String {
            text.count > 4_000 ? String(text.prefix(4_000)) + "…(\(text.count) chars)" : text
        }
        let commands = batch.map { command in
            "  " + truncated(ReplyNormalizer.escape(pair.render(command, for: self.reference)))
        }
        var message = """
            seed \(seed), batch \(batchNumber): \(self.candidate.name) disagrees with memcached
            commands (as sent to memcached; `mn\\r\\n` sentinel appended unless quit):
            \(commands.joined(separator: "\n"))
            memcached replied (\(reference.outcome)):
              \(truncated(ReplyNormalizer.escape(reference.bytes)))
            \(self.candidate.name) replied (\(candidate.outcome)):
              \(truncated(ReplyNormalizer.escape(candidate.bytes)))
            normalized memcached: \(truncated(referenceNormal.lines.joined(separator: " | ")))
            normalized \(self.candidate.name): \(truncated(candidateNormal.lines.joined(separator: " | ")))
            """
        // Long pipelines make the full replies unreadable; point at the first differing normalized line.
        let commonCount = min(referenceNormal.lines.count, candidateNormal.lines.count)
        let firstDifference =
            (0..<commonCount).first { referenceNormal.lines[$0] != candidateNormal.lines[$0] } ?? commonCount
        func window(_ lines: [String]) -> String {
            let range = max(0, firstDifference - 2)..<min(lines.count, firstDifference + 3)
            return lines[range].joined(separator: " | ")
        }
        message += """

            first difference at normalized line \(firstDifference):
              memcached: \(window(referenceNormal.lines))
              \(self.candidate.name): \(window(candidateNormal.lines))
            """
        if referenceNormal.clockReadings != candidateNormal.clockReadings {
            message += "\nclock readings: \(referenceNormal.clockReadings) vs \(candidateNormal.clockReadings)"
        }
        Issue.record(Comment(rawValue: message))
        if let path = ProcessInfo.processInfo.environment["DIFF_REPORT"] {
            Self.append(message + "\n\n", to: path)
        }
    }

    private static func append(_ text: String, to path: String) {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
    }
}
