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
                    options: .init(candidateName: "memcached#2")
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
                    options: .init(candidateName: "flotilla", checksStatNames: true)
                )
                try run.execute(commands: Self.commandsPerRun)
            }
        }
    }
}
