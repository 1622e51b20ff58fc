import FlotillaTestSupport
import Foundation
import NIOCore
import Testing

extension BenchTests {
    /// Bad invocations exit 2 with a message on stderr that names what was wrong.
    @Suite("usage errors")
    struct Usage {
        /// One bad invocation. `{memcache}` and `{http}` in the arguments stand for a live delay server, so that a
        /// flag the CLI failed to reject shows up as a run that succeeds rather than as some other error.
        struct Case: Sendable, CustomTestStringConvertible {
            var name: String
            var arguments: [String]
            /// The message must mention at least one of these (case-insensitive).
            var mentions: [String]

            var testDescription: String { name }
        }

        static let cases: [Case] = [
            Case(name: "no target", arguments: [], mentions: ["target"]),
            Case(name: "https", arguments: ["https://127.0.0.1:1/"], mentions: ["https"]),
            Case(name: "unknown scheme", arguments: ["ftp://x"], mentions: ["ftp"]),
            Case(name: "port out of range", arguments: ["memcache://127.0.0.1:99999"], mentions: ["99999"]),
            Case(
                name: "unknown distribution",
                arguments: ["{memcache}", "--distribution", "gauss"],
                mentions: ["gauss"]
            ),
            Case(name: "no connections", arguments: ["{memcache}", "--connections", "0"], mentions: ["connections"]),
            Case(name: "no pipeline", arguments: ["{memcache}", "--pipeline", "0"], mentions: ["pipeline"]),
            Case(
                name: "get ratio above 1",
                arguments: ["{memcache}", "--get-ratio", "1.5"],
                mentions: ["get-ratio", "get ratio"]
            ),
            // ArgumentParser takes `-3` for an option name; `--rate=-3` reaches the bench's own check.
            Case(name: "negative rate", arguments: ["{memcache}", "--rate", "-3"], mentions: ["rate"]),
            Case(name: "negative rate, joined", arguments: ["{memcache}", "--rate=-3"], mentions: ["rate"]),
            Case(name: "memcache flag on http", arguments: ["{http}", "--get-ratio", "0.5"], mentions: ["get-ratio"]),
            Case(
                name: "header without colon",
                arguments: ["{http}", "--header", "nocolon"],
                mentions: ["nocolon", "header"]
            ),
            Case(name: "compare with one target", arguments: ["--compare", "{memcache}"], mentions: ["compare"]),
            Case(
                name: "nothing listening",
                arguments: ["memcache://127.0.0.1:1"],
                mentions: ["connect", "refused"]
            ),
        ]

        @Test("exit 2 with a message naming the problem", .timeLimit(.minutes(1)), arguments: cases)
        func usageError(_ usage: Case) async throws {
            try await withDelayServer(.init(wireProtocol: .memcache, plan: .cycle([.zero]))) { memcache in
                try await withDelayServer(.init(wireProtocol: .http, plan: .cycle([.zero]))) { http in
                    // Short runs, so that a flag wrongly accepted fails the test quickly.
                    var arguments =
                        usage.arguments.map {
                            $0.replacingOccurrences(of: "{memcache}", with: BenchTests.target(memcache))
                                .replacingOccurrences(of: "{http}", with: BenchTests.target(http))
                        } + ["--duration", "1s", "--warmup", "0", "--quiet"]
                    if usage.arguments.contains("{memcache}") { arguments.append("--no-prefill") }
                    let run = try BenchTests.bench(arguments, timeout: .seconds(20))
                    #expect(run.status == 2, "\(run)")
                    let message = run.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
                    #expect(
                        message.hasPrefix("Error:") || message.hasPrefix("flotilla bench:"),
                        "stderr must start with 'Error:' or 'flotilla bench:': \(run)"
                    )
                    #expect(
                        usage.mentions.contains { message.localizedCaseInsensitiveContains($0) },
                        "stderr must mention one of \(usage.mentions): \(run)"
                    )
                    #expect(run.stdout.isEmpty, "no report on a usage error: \(run)")
                }
            }
        }
    }
}
