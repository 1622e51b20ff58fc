import ArgumentParser
import FlotillaBench
import FlotillaCore
import FlotillaProxy
import Foundation
import NIOCore
import NIOPosix

/// `flotilla cache-proxy verify`: compares a key sample across its replicas.
struct CacheProxyVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Is the data the same in every store? Compares a sample of keys across their replicas.",
        discussion: """
            Asks each of a key's home replicas directly (not through the proxy) for its value and \
            client flags, and reports keys whose replicas disagree or that only some replicas hold. \
            Give the same --shards, --replicas and --distribution as to the proxy. Exit status: 0 \
            when every sampled key agrees, 1 when some diverge or a shard cannot be asked, 2 on a \
            usage error.

            Example:
              flotilla cache-proxy verify --shards 127.0.0.1:11211,127.0.0.1:11212,127.0.0.1:11213 \\
                --bench-keys 10000
            """
    )

    /// `--shards`, `--replicas` and `--distribution` are the proxy's own flags.
    @ParentCommand var proxy: CacheProxyCommand

    @Option(name: .customLong("key"), help: "A key to check (repeatable).")
    var keys: [String] = []

    @Option(help: "A file of keys to check, one per line.")
    var keysFile: String?

    @Option(help: "Check the first N keys `flotilla bench` writes (bench:000…).")
    var benchKeys: Int?

    @Option(help: "The --key-size the bench used (default: 32).")
    var keySize = 32

    @Option(help: "Deadline of one batch of requests to a shard (default: 2s).", transform: parseDuration)
    var timeout: Duration = .seconds(2)

    func sample() throws -> [String] {
        var sample = keys
        if let keysFile {
            guard let text = try? String(contentsOfFile: keysFile, encoding: .utf8) else {
                throw ValidationError("--keys-file: cannot read '\(keysFile)'")
            }
            sample += text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        }
        if let benchKeys {
            guard (1...10_000_000).contains(benchKeys) else {
                throw ValidationError("--bench-keys must be from 1 to 10000000, got \(benchKeys)")
            }
            guard keySize >= BenchPlan.minimumKeySize(keys: benchKeys), keySize <= 250 else {
                throw ValidationError("--key-size must hold \(benchKeys) keys and be at most 250, got \(keySize)")
            }
            var plan = BenchPlan(target: try BenchTarget(parsing: "memcache://127.0.0.1:11211"))
            plan.keySize = keySize
            sample += (0..<benchKeys).map { plan.key($0) }
        }
        guard !sample.isEmpty else { throw ValidationError("give keys to check: --key, --keys-file or --bench-keys") }
        if let bad = sample.first(where: { $0.utf8.count > 250 }) {
            throw ValidationError("key longer than 250 bytes: '\(bad.prefix(40))…'")
        }
        return sample
    }

    func validate() throws {
        _ = try sample()
    }

    func run() async throws {
        let configuration = try proxy.roleConfiguration()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let report: ReplicaVerifier.Report
        do {
            report = try await ReplicaVerifier.verify(
                shards: configuration.shards,
                distribution: configuration.distribution,
                replicas: configuration.replicas,
                keys: try sample(),
                timeout: timeout,
                group: group
            )
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
        print("keys checked      \(report.keys)")
        print("consistent        \(report.consistent)")
        print("held by none      \(report.absent)")
        print("held by some only \(report.partial.count)\(examples(report.partial))")
        print("values differ     \(report.divergent.count)\(examples(report.divergent))")
        for (shard, reason) in report.unreachable.sorted(by: { $0.key < $1.key }) {
            print("unreachable       \(shard): \(reason)")
        }
        if report.diverges || !report.unreachable.isEmpty { throw ExitCode(1) }
    }

    private func examples(_ keys: [String]) -> String {
        keys.isEmpty ? "" : "   e.g. " + keys.prefix(5).joined(separator: ", ")
    }
}
