import FlotillaTestSupport
import Foundation
import Testing

/// Differential test of `flotilla cache-proxy`: the seeded command streams of `DifferentialTests` (same
/// `CommandGenerator`, same seeds, same random chunking) go to one reference memcached and, through the proxy, to
/// three memcached shards. The proxy runs with `--replicas 2 --consistency all`, so every write has reached both
/// replicas of its key before its reply and every reply is deterministic; the normalized replies must agree batch by
/// batch.
///
/// Documented exceptions (see docs/cache-proxy-differences.md), and nothing else, are tolerated:
/// - `VERSION` string, `stats` block contents, CAS unique values and `me` debug output, by `ReplyNormalizer` as in
///   `DifferentialTests`. CAS tokens sent back are each side's own, so whether a CAS *matches* is still compared.
///   Unlike `flotilla cache`, the proxy is not required to report memcached's statistic names: its `stats` describes
///   the proxy (shards, replicas, fallbacks, hints).
/// - The `h` (hit before) and `l` (seconds since last access) return flags of `mg`: reads are spread over a key's
///   two replicas and each replica remembers only the reads it served, so a key fetched before can report `h0` and
///   an older `l`. Both are masked on both sides (`maskAccessHistory`).
/// - `ma … q` with `N`: memcached shows the `HD` of an item it just created and hides that of an existing one; the
///   proxy cannot tell the two apart from its replicas' replies, so the generator's commands of that shape are not
///   sent (`isQuietVivifyingArithmetic`).
///
/// Everything else must match, including the effects of pipelining: any other mismatching batch is a proxy bug and
/// fails the test (no allowance).
///
/// Tunables (environment): `DIFF_SEEDS` (comma-separated, overrides the built-in seeds), `DIFF_PROXY_COMMANDS`
/// (commands per seed, default 4000), `DIFF_REPORT` and `DIFF_TRACE` as in `DifferentialTests`. Each seed stops after
/// `seedTimeBudget` so that the suite stays well under a minute in a debug build.
@Suite(
    "Differential: cache-proxy over three memcached shards",
    .serialized,
    .enabled(if: PeerProcess.memcachedTestsEnabled, Comment(rawValue: PeerProcess.memcachedMissingMessage))
)
struct ProxyDifferentialTests {
    /// The same seeds as the memcached differential test (`DIFF_SEEDS` overrides both).
    static let seeds = DifferentialTests.seeds

    static var commandsPerRun: Int {
        ProcessInfo.processInfo.environment["DIFF_PROXY_COMMANDS"].flatMap(Int.init) ?? 4_000
    }

    @Test("cache-proxy over three shards agrees with one memcached", arguments: seeds)
    func proxyAgainstMemcached(seed: UInt64) throws {
        guard PeerProcess.memcachedPath != nil else {
            Issue.record(Comment(rawValue: PeerProcess.memcachedMissingMessage))
            return
        }
        try PeerProcess.withReferenceAndProxy { referencePort, proxy in
            var run = try ProxyDifferentialRun(seed: seed, referencePort: referencePort, proxyPort: proxy.dataPort)
            try run.execute(commands: Self.commandsPerRun)
        }
    }
}

/// One seeded run: reference memcached against the proxy.
private struct ProxyDifferentialRun {
    typealias Side = DifferentialSide

    /// A batch's reply and how the read ended.
    struct Reply {
        var bytes: [UInt8]
        var outcome: WireClient.ReadOutcome
    }

    let seed: UInt64
    var generator: CommandGenerator
    let reference: Side
    let proxy: Side
    private var pair: DifferentialPair { DifferentialPair(seed: seed, reference: reference, candidate: proxy) }
    private var mismatches = 0
    /// Every mismatch fails the test; after this many the seed stops, since the state has diverged anyway.
    private static let maxMismatches = 10
    /// Wall-clock budget per seed: four seeds then take well under a minute even when every batch mismatches.
    static let seedTimeBudget = Duration.seconds(12)
    /// Fewer commands than this within the budget means the proxy is pathologically slow: a failure.
    private static let minimumCommands = 1_000
    private static let sentinel = Array("mn\r\n".utf8)
    private static let sentinelReply = Array("MN\r\n".utf8)

    init(seed: UInt64, referencePort: UInt16, proxyPort: UInt16) throws {
        self.seed = seed
        generator = CommandGenerator(seed: seed)
        reference = try Side(name: "memcached", port: referencePort)
        proxy = try Side(name: "cache-proxy", port: proxyPort)
    }

    mutating func execute(commands total: Int) throws {
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started.advanced(by: Self.seedTimeBudget)
        var sent = 0
        var batchNumber = 0
        while sent < total {
            if clock.now >= deadline {
                print("proxy differential seed \(seed): time budget spent after \(sent) of \(total) commands")
                if sent < min(total, Self.minimumCommands) {
                    Issue.record("seed \(seed): only \(sent) commands within \(Self.seedTimeBudget)")
                }
                break
            }
            let batch = generator.nextBatch().filter { !isQuietVivifyingArithmetic($0) }
            sent += batch.count
            batchNumber += 1
            let length = batch.reduce(Self.sentinel.count) { $0 + pair.render($1, for: reference).count }
            let plan = generator.chunkPlan(length: length)
            let referenceReply = exchange(batch, on: reference, plan: plan)
            let proxyReply = exchange(batch, on: proxy, plan: plan)
            let referenceNormal = ReplyNormalizer.normalize(Self.maskAccessHistory(referenceReply.bytes))
            let proxyNormal = ReplyNormalizer.normalize(Self.maskAccessHistory(proxyReply.bytes))
            if let path = ProcessInfo.processInfo.environment["DIFF_TRACE"] {
                let commands = batch.map { ReplyNormalizer.escape(pair.render($0, for: reference)) }
                Self.append(
                    """
                    seed \(seed) batch \(batchNumber)
                    \(commands.map { "  " + $0 }.joined(separator: "\n"))
                    = \(ReplyNormalizer.escape(referenceReply.bytes))
                    ? \(ReplyNormalizer.escape(proxyReply.bytes))

                    """,
                    to: path
                )
            }
            let agrees = referenceNormal.agrees(with: proxyNormal) && referenceReply.outcome == proxyReply.outcome
            if !agrees {
                report(batchNumber: batchNumber, batch: batch, reference: referenceReply, proxy: proxyReply)
                mismatches += 1
                if mismatches >= Self.maxMismatches {
                    print("proxy differential seed \(seed): stopping after \(mismatches) mismatching batches")
                    return
                }
                try pair.resynchronize()
                continue
            }
            if let key = batch.last?.fetchesCasOfKey {
                pair.recordCas(of: key, from: referenceReply.bytes, side: reference)
                pair.recordCas(of: key, from: proxyReply.bytes, side: proxy)
            }
            if batch.last?.closesConnection == true || referenceReply.outcome == .closed {
                try reference.reconnect()
                try proxy.reconnect()
            }
        }
        let elapsed = clock.now - started
        print(
            "proxy differential seed \(seed): \(sent) commands in \(batchNumber) batches, \(elapsed), "
                + "\(mismatches) mismatches"
        )
    }

    /// Replaces the `h0`/`h1` and `l<seconds>` return flags of meta response lines with `h<hit>` and `l<la>`: they
    /// describe the access history of whichever replica served the read (documented exception).
    ///
    /// Works on raw bytes, since keys and values may hold any byte. The line after a `VA`/`VALUE` header is data and
    /// left alone; other lines are rewritten only when they start with a meta response code.
    static func maskAccessHistory(_ bytes: [UInt8]) -> [UInt8] {
        let codes: Set<[UInt8]> = Set(["HD", "VA", "EN", "NF", "NS", "EX"].map { Array($0.utf8) })
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var lineStart = 0
        var nextIsData = false
        var index = 0
        func emit(_ line: ArraySlice<UInt8>) {
            if nextIsData {
                nextIsData = false
                output += line
                return
            }
            let tokens = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard let code = tokens.first, codes.contains(Array(code)) else {
                nextIsData = line.starts(with: "VALUE ".utf8)
                output += line
                return
            }
            // For VA the token after the code is the data length, then come the flags.
            nextIsData = code.elementsEqual("VA".utf8)
            let firstFlag = nextIsData ? 2 : 1
            var rewritten: [[UInt8]] = []
            for (position, token) in tokens.enumerated() {
                let digits = token.dropFirst()
                if position < firstFlag {
                    rewritten.append(Array(token))
                } else if token.first == UInt8(ascii: "h"),
                    digits.elementsEqual("0".utf8) || digits.elementsEqual("1".utf8)
                {
                    rewritten.append(Array("h<hit>".utf8))
                } else if token.first == UInt8(ascii: "l"), !digits.isEmpty,
                    digits.allSatisfy({ (48...57).contains($0) })
                {
                    rewritten.append(Array("l<la>".utf8))
                } else {
                    rewritten.append(Array(token))
                }
            }
            output += Array(rewritten.joined(separator: [UInt8(ascii: " ")]))
        }
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 {
                emit(bytes[lineStart..<index])
                output += [13, 10]
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        output += bytes[lineStart...]
        return output
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
        let result = side.client.read(timeout: .seconds(quits ? 3 : 2)) { received in
            !quits && received.suffix(4).elementsEqual(Self.sentinelReply) && Self.countMN(received) >= expectedMN
        }
        return Reply(bytes: result.bytes, outcome: result.outcome)
    }

    /// Counts reply lines that are exactly `MN`; stored values are lowercase, so no data line can be one.
    private static func countMN(_ bytes: [UInt8]) -> Int {
        ReplyNormalizer.splitLines(bytes).reduce(0) { $0 + ($1 == "MN" ? 1 : 0) }
    }

    /// `ma … q … N…`: memcached hides the reply when the item existed and shows the HD of an item
    /// it created; the proxy cannot tell the two apart from its replicas' replies and hides both
    /// (documented exception), so these commands are not compared.
    private func isQuietVivifyingArithmetic(_ command: CommandGenerator.Command) -> Bool {
        let text = String(decoding: pair.render(command, for: reference), as: UTF8.self)
        guard text.hasPrefix("ma ") else { return false }
        // "\r\n" is one Character: split on scalars, or a trailing `q` keeps its line end.
        let line = text.unicodeScalars.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).first.map(String.init) ?? ""
        let tokens = line.split(separator: " ").dropFirst(2)
        return tokens.contains("q") && tokens.contains { $0.hasPrefix("N") }
    }

    private mutating func report(batchNumber: Int, batch: [CommandGenerator.Command], reference: Reply, proxy: Reply) {
        func truncated(_ text: String) -> String {
            text.count > 4_000 ? String(text.prefix(4_000)) + "…(\(text.count) chars)" : text
        }
        let referenceNormal = ReplyNormalizer.normalize(Self.maskAccessHistory(reference.bytes))
        let proxyNormal = ReplyNormalizer.normalize(Self.maskAccessHistory(proxy.bytes))
        let commands = batch.map { "  " + truncated(ReplyNormalizer.escape(pair.render($0, for: self.reference))) }
        let commonCount = min(referenceNormal.lines.count, proxyNormal.lines.count)
        let firstDifference =
            (0..<commonCount).first { referenceNormal.lines[$0] != proxyNormal.lines[$0] } ?? commonCount
        func window(_ lines: [String]) -> String {
            lines[max(0, firstDifference - 2)..<min(lines.count, firstDifference + 3)].joined(separator: " | ")
        }
        var message = """
            seed \(seed), batch \(batchNumber): cache-proxy disagrees with memcached
            commands (as sent to memcached; `mn\\r\\n` sentinel appended unless quit):
            \(commands.joined(separator: "\n"))
            memcached replied (\(reference.outcome)):
              \(truncated(ReplyNormalizer.escape(reference.bytes)))
            cache-proxy replied (\(proxy.outcome)):
              \(truncated(ReplyNormalizer.escape(proxy.bytes)))
            first difference at normalized line \(firstDifference):
              memcached: \(window(referenceNormal.lines))
              cache-proxy: \(window(proxyNormal.lines))
            """
        if referenceNormal.clockReadings != proxyNormal.clockReadings {
            message += "\nclock readings: \(referenceNormal.clockReadings) vs \(proxyNormal.clockReadings)"
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
