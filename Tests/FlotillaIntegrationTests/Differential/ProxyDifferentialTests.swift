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
            var run = try DifferentialRun(
                seed: seed,
                referencePort: referencePort,
                candidatePort: proxy.dataPort,
                options: Self.options
            )
            try run.execute(commands: Self.commandsPerRun)
        }
    }
}

extension ProxyDifferentialTests {
    /// Through the proxy: access history masked, quietly vivifying arithmetic not sent, and a
    /// time budget per seed (four seeds then take well under a minute even when every batch
    /// mismatches); fewer than 1,000 commands within it means the proxy is pathologically slow.
    static let options = DifferentialRun.Options(
        candidateName: "cache-proxy",
        maxMismatches: 10,
        timeBudget: .seconds(12),
        minimumCommands: 1_000,
        skips: isQuietVivifyingArithmetic,
        mask: maskAccessHistory
    )

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

    /// `ma … q … N…`: memcached hides the reply when the item existed and shows the HD of an item
    /// it created; the proxy cannot tell the two apart from its replicas' replies and hides both
    /// (documented exception), so these commands are not compared.
    static func isQuietVivifyingArithmetic(_ rendered: [UInt8]) -> Bool {
        let text = String(decoding: rendered, as: UTF8.self)
        guard text.hasPrefix("ma ") else { return false }
        // "\r\n" is one Character: split on scalars, or a trailing `q` keeps its line end.
        let line = text.unicodeScalars.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).first.map(String.init) ?? ""
        let tokens = line.split(separator: " ").dropFirst(2)
        return tokens.contains("q") && tokens.contains { $0.hasPrefix("N") }
    }
}
