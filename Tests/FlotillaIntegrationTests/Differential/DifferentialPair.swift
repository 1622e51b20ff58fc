import FlotillaTestSupport
import Foundation
import Testing

/// One server under comparison: a connection plus the CAS values it reported per pool key.
final class DifferentialSide {
    let name: String
    let port: UInt16
    var client: WireClient
    var casByKey: [Int: UInt64] = [:]

    init(name: String, port: UInt16) throws {
        self.name = name
        self.port = port
        client = try WireClient(port: port)
    }

    func reconnect() throws {
        client.close()
        client = try WireClient(port: port)
    }
}

/// The two servers of a differential run, and what every such run does alike with them: render a
/// command with each side's own CAS tokens, record the CAS a batch's trailing `mg <key> c` reported,
/// and flush both to start again in step.
struct DifferentialPair {
    let seed: UInt64
    let reference: DifferentialSide
    let candidate: DifferentialSide

    func render(_ command: CommandGenerator.Command, for side: DifferentialSide) -> [UInt8] {
        var bytes: [UInt8] = []
        for segment in command.segments {
            switch segment {
            case .bytes(let literal):
                bytes += literal
            case .cas(let key, let choice):
                bytes += Array(casToken(key: key, choice: choice, side: side).utf8)
            }
        }
        return bytes
    }

    /// Resolves a CAS token for one server. `older` is used only when both servers have a CAS above 1 for the key,
    /// so that both sides make the same kind of claim; otherwise both fall back to a bogus value.
    private func casToken(key: Int, choice: CommandGenerator.CasChoice, side: DifferentialSide) -> String {
        let bogus = "999999999999"
        switch choice {
        case .bogus:
            return bogus
        case .current:
            return side.casByKey[key].map(String.init) ?? bogus
        case .older:
            guard let mine = side.casByKey[key], (reference.casByKey[key] ?? 0) > 1, (candidate.casByKey[key] ?? 0) > 1
            else { return bogus }
            return String(mine - 1)
        }
    }

    /// Records the CAS from the reply to a trailing `mg <key> c`: its line is the last one before the final `MN`.
    func recordCas(of key: Int, from bytes: [UInt8], side: DifferentialSide) {
        let lines = ReplyNormalizer.splitLines(bytes)
        guard lines.count >= 2 else { return }
        let answer = lines[lines.count - 2]
        if answer.hasPrefix("HD c"), let value = UInt64(answer.dropFirst(4)) {
            side.casByKey[key] = value
        } else if answer == "EN" {
            side.casByKey[key] = nil
        }
    }

    /// Flushes both servers on new connections and forgets their CAS values.
    func resynchronize() throws {
        for side in [reference, candidate] {
            try side.reconnect()
            side.casByKey.removeAll()
            side.client.send(Array("flush_all\r\nmn\r\n".utf8))
            let result = side.client.read(timeout: .seconds(2)) { $0.suffix(4).elementsEqual(Array("MN\r\n".utf8)) }
            if result.outcome != .satisfied {
                Issue.record("seed \(seed): \(side.name) did not answer flush_all while resynchronizing")
            }
        }
    }

    static let sentinel = Array("mn\r\n".utf8)
    static let sentinelReply = Array("MN\r\n".utf8)

    /// A batch's reply and how the read ended.
    struct Reply {
        var bytes: [UInt8]
        var outcome: WireClient.ReadOutcome
    }

    /// Sends a batch (plus the `mn` sentinel unless it ends in `quit`) and reads its complete reply.
    func exchange(
        _ batch: [CommandGenerator.Command],
        on side: DifferentialSide,
        plan: CommandGenerator.ChunkPlan
    ) -> Reply {
        var bytes = batch.flatMap { render($0, for: side) }
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

    /// With $DIFF_TRACE set, appends every batch and both replies to that file.
    func trace(batchNumber: Int, batch: [CommandGenerator.Command], reference: Reply, candidate: Reply) {
        guard let path = ProcessInfo.processInfo.environment["DIFF_TRACE"] else { return }
        let commands = batch.map { "  " + ReplyNormalizer.escape(render($0, for: self.reference)) }
        Self.append(
            """
            seed \(seed) batch \(batchNumber)
            \(commands.joined(separator: "\n"))
            = \(ReplyNormalizer.escape(reference.bytes))
            ? \(ReplyNormalizer.escape(candidate.bytes))

            """,
            to: path
        )
    }

    /// Records a mismatching batch as a test issue (and appends it to $DIFF_REPORT when set).
    func report(
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
            "  " + truncated(ReplyNormalizer.escape(render(command, for: self.reference)))
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

/// One seeded differential run: the generator's batches to a reference memcached and to a
/// candidate, batch by batch, every mismatch reported; the two are flushed to start in step again
/// after one.
struct DifferentialRun {
    /// What differs between candidates.
    struct Options: Sendable {
        var candidateName: String
        /// Check that `stats` names every statistic memcached reports (for `flotilla cache`).
        var checksStatNames = false
        /// After this many mismatching batches the seed stops: the state has diverged anyway.
        var maxMismatches = 25
        /// The seed stops when this is spent...
        var timeBudget = Duration.seconds(600)
        /// ...and fails if fewer commands than this (or than asked for, if fewer) were sent by then.
        var minimumCommands = Int.max
        /// Commands not sent (documented exceptions), given as rendered for the reference.
        var skips: @Sendable ([UInt8]) -> Bool = { _ in false }
        /// Rewrites both sides' replies before they are compared (documented exceptions).
        var mask: @Sendable ([UInt8]) -> [UInt8] = { $0 }
    }

    let seed: UInt64
    var generator: CommandGenerator
    let reference: DifferentialSide
    let candidate: DifferentialSide
    let options: Options
    private var pair: DifferentialPair { DifferentialPair(seed: seed, reference: reference, candidate: candidate) }
    private var mismatches = 0

    init(seed: UInt64, referencePort: UInt16, candidatePort: UInt16, options: Options) throws {
        self.seed = seed
        self.options = options
        generator = CommandGenerator(seed: seed)
        reference = try DifferentialSide(name: "memcached", port: referencePort)
        candidate = try DifferentialSide(name: options.candidateName, port: candidatePort)
    }

    mutating func execute(commands total: Int) throws {
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started.advanced(by: options.timeBudget)
        var sent = 0
        var batchNumber = 0
        while sent < total {
            if clock.now >= deadline {
                print("differential seed \(seed): time budget spent after \(sent) of \(total) commands")
                if sent < min(total, options.minimumCommands) {
                    Issue.record("seed \(seed): only \(sent) commands within \(options.timeBudget)")
                }
                break
            }
            let batch = generator.nextBatch().filter { !options.skips(pair.render($0, for: reference)) }
            sent += batch.count
            batchNumber += 1
            let length = batch.reduce(DifferentialPair.sentinel.count) { $0 + pair.render($1, for: reference).count }
            let plan = generator.chunkPlan(length: length)
            let referenceReply = pair.exchange(batch, on: reference, plan: plan)
            let candidateReply = pair.exchange(batch, on: candidate, plan: plan)
            let referenceNormal = ReplyNormalizer.normalize(options.mask(referenceReply.bytes))
            let candidateNormal = ReplyNormalizer.normalize(options.mask(candidateReply.bytes))
            if options.checksStatNames {
                let missing = ReplyNormalizer.missingStatNames(candidateNormal)
                if !missing.isEmpty {
                    Issue.record("seed \(seed): \(candidate.name) stats lacks \(missing.joined(separator: ", "))")
                }
            }
            pair.trace(batchNumber: batchNumber, batch: batch, reference: referenceReply, candidate: candidateReply)
            let agrees =
                referenceNormal.agrees(with: candidateNormal) && referenceReply.outcome == candidateReply.outcome
            if !agrees {
                pair.report(
                    batchNumber: batchNumber,
                    batch: batch,
                    reference: referenceReply,
                    candidate: candidateReply,
                    referenceNormal: referenceNormal,
                    candidateNormal: candidateNormal
                )
                mismatches += 1
                if mismatches >= options.maxMismatches {
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
        print(
            "differential seed \(seed), \(candidate.name): \(sent) commands in \(batchNumber) batches, "
                + "\(clock.now - started), \(mismatches) mismatches"
        )
    }
}
