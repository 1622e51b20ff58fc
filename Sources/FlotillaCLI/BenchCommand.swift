import ArgumentParser
import FlotillaBench
import FlotillaCore
import Foundation
import NIOCore
import UnixSignals

/// `flotilla bench`: a load generator for memcached and HTTP/1.1 targets, judged against an SLO.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load a memcached or HTTP/1.1 target and report latency percentiles, throughput and errors.",
        discussion: """
            Closed loop by default: every connection keeps --pipeline requests in flight, for maximum \
            throughput. With --rate, an open loop: requests leave on a fixed schedule and latency is \
            measured from when each one should have left, so a stalled server cannot hide its stall \
            (no coordinated omission).

            Every request that was due and did not succeed is a failure: in an open loop, one not sent \
            in time (not_sent); in a closed loop, a connection's time without a connection counts at \
            the rate it had (unavailable). Exit status: 0 when the run completed and met --slo (without \
            --slo: when at least one request succeeded), 1 when it missed --slo (or none succeeded), 2 \
            on a usage error or when the target could not be reached at all.

            Examples:
              flotilla bench memcache://127.0.0.1:11211 --connections 32
              flotilla bench memcache://127.0.0.1:11211 --rate 20000/s \\
                --distribution zipf:0.99 --slo 'p99<2ms,success>=99.9%'
              flotilla bench 'http://127.0.0.1:8080/item/{key}' --sessions 100
              flotilla bench --compare memcache://127.0.0.1:11211 \\
                memcache://127.0.0.1:11311 --rounds 3
            """
    )

    @Argument(help: "memcache://HOST:PORT or http://HOST:PORT/PATH ({key} in PATH takes a key).")
    var target: String?

    @Option(
        parsing: .upToNextOption,
        help: ArgumentHelp("Two targets to alternate, A B A B …, under the same workload.", valueName: "target")
    )
    var compare: [String] = []

    @Option(help: "Rounds of each target with --compare.")
    var rounds = 3

    @Option(help: "Length of the timed phase (default: 10s).", transform: parseDuration)
    var duration: Duration = .seconds(10)

    @Option(
        help: "Untimed load before the timed phase, 0 for none (default: 1s).",
        transform: { $0 == "0" ? .zero : try parseDuration($0) }
    )
    var warmup: Duration = .seconds(1)

    @Option(help: "Connections to open.")
    var connections = 32

    @Option(help: "Event-loop threads (default: the number of cores).")
    var threads: Int?

    @Option(help: "Requests in flight per connection.")
    var pipeline = 1

    @Flag(help: "Pin event-loop thread i to CPU i (Linux), as memcaslap pins its threads.")
    var pinThreads = false

    @Option(
        help: "Open loop at this many requests per second in total, e.g. 5000, 5000/s or 300000/min.",
        transform: parseRate
    )
    var rate: Double?

    @Option(help: "Number of distinct keys.")
    var keys = 100_000

    @Option(help: "Key popularity: uniform, zipf:S (exponent S), or hotspot:P (one key takes P % of requests).")
    var distribution = "uniform"

    @Option(help: "Seed of the key and operation choices (runs with the same seed draw the same keys).")
    var seed: UInt64 = 1

    @Option(
        help: "A request unanswered after this long fails as a timeout; its connection is replaced (default: 5s).",
        transform: parseDuration
    )
    var timeout: Duration = .seconds(5)

    @Option(
        help: "Service-level objective deciding the exit status, e.g. 'p99<2ms,success>=99.9%'.",
        transform: parseSLO
    )
    var slo: SLOSpec?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "No progress lines on standard error.")
    var quiet = false

    @OptionGroup(title: "memcache:// targets")
    var memcache: MemcacheOptions

    @OptionGroup(title: "http:// targets")
    var http: HTTPOptions

    struct MemcacheOptions: ParsableArguments {
        @Option(help: "Share of requests that are gets, 0 to 1; the rest are sets (default: 0.9).")
        var getRatio: Double?

        @Option(help: "Bytes of each value set (default: 100).", transform: parseByteSize)
        var valueSize: ByteSize?

        @Option(help: "Characters of each key, 'bench:' then the zero-padded key number (default: 32).")
        var keySize: Int?

        @Option(help: "Keys per get (default: 1).")
        var multiget: Int?

        @Flag(help: "Do not set every key once before the warm-up (gets then miss until a set).")
        var noPrefill = false
    }

    struct HTTPOptions: ParsableArguments {
        @Option(help: "Request method (default: GET).")
        var method: String?

        @Option(name: .customLong("header"), help: "An extra request header, 'Name: value' (repeatable).")
        var headers: [String] = []

        @Option(help: "Request body: the text itself, or @FILE for a file's bytes.")
        var body: String?

        @Option(help: "Virtual users, each with its own cookie jar sent on every request it makes.")
        var sessions: Int?

        @Option(help: "Name of the cookie that identifies a virtual user (default: flotilla_session).")
        var sessionCookie: String?
    }

    func validate() throws {
        _ = try makePlans()
    }

    func run() async throws {
        let plans = try makePlans()
        if plans.count == 2 {
            try await runComparison(plans[0], plans[1])
        } else {
            try await runOnce(plans[0])
        }
    }

    // MARK: Running

    private func runOnce(_ plan: BenchPlan) async throws {
        let (report, interrupted) = try await measure(plan, label: nil)
        print(json ? report.jsonString() : report.text)
        if interrupted {
            FileHandle.standardError.write(
                Data("flotilla bench: interrupted after \(String(format: "%.1f", report.elapsedSeconds)) s\n".utf8)
            )
            throw ExitCode(130)
        }
        if let outcome = report.slo, !outcome.met {
            throw ExitCode(1)
        }
        if report.slo == nil, report.successes == 0 {
            FileHandle.standardError.write(Data("flotilla bench: no request succeeded\n".utf8))
            throw ExitCode(1)
        }
    }

    private func runComparison(_ a: BenchPlan, _ b: BenchPlan) async throws {
        var reportsA: [BenchReport] = []
        var reportsB: [BenchReport] = []
        for round in 1...rounds {
            for (plan, side) in [(a, "A"), (b, "B")] {
                let (report, interrupted) = try await measure(plan, label: "round \(round)/\(rounds) \(side)")
                // A comparison with a cut-short round would compare unlike things: stop without one.
                if interrupted {
                    FileHandle.standardError.write(Data("flotilla bench: interrupted in round \(round)\n".utf8))
                    throw ExitCode(130)
                }
                if side == "A" { reportsA.append(report) } else { reportsB.append(report) }
            }
        }
        let comparison = BenchComparison(a: reportsA, b: reportsB)
        print(json ? comparison.jsonString() : comparison.text)
    }

    /// One run, stopped early by Ctrl-C (SIGINT) with what it measured so far.
    private func measure(_ plan: BenchPlan, label: String?) async throws -> (BenchReport, interrupted: Bool) {
        let line = ProgressLine(enabled: !quiet, prefix: label.map { "bench \($0)" } ?? "bench")
        if !quiet, plan.target.kind == .memcache, plan.prefill, plan.getRatio > 0 {
            line.note("setting the \(plan.keys) keys once (prefill; --no-prefill skips it)")
        }
        let run = Task { try await BenchRunner.run(plan) { progress in line.show(progress) } }
        let interrupts = await UnixSignalsSequence(trapping: .sigint)
        let watcher = Task {
            for await _ in interrupts {
                run.cancel()
                break
            }
        }
        defer { watcher.cancel() }
        let outcome: BenchOutcome
        do {
            outcome = try await run.value
        } catch let error as BenchRunError {
            line.finish()
            FileHandle.standardError.write(Data("flotilla bench: \(error.description)\n".utf8))
            throw ExitCode(2)
        } catch is CancellationError {
            line.finish()
            FileHandle.standardError.write(Data("flotilla bench: interrupted before the timed phase\n".utf8))
            throw ExitCode(130)
        }
        line.finish()
        if outcome.prefillFailures > 0 {
            FileHandle.standardError.write(
                Data(
                    "flotilla bench: warning: the target refused \(outcome.prefillFailures) sets of the prefill\n".utf8
                )
            )
        }
        let report = BenchReport(
            settings: BenchReport.Settings(plan: plan),
            totals: outcome.totals,
            elapsedSeconds: outcome.elapsedSeconds,
            slo: slo
        )
        return (report, outcome.interrupted)
    }

    // MARK: Validation

    /// One plan, or two with --compare; every flag checked, with a message naming the flag.
    func makePlans() throws -> [BenchPlan] {
        let texts: [String]
        switch (target, compare.count) {
        case (nil, 0):
            throw ValidationError("give a target (memcache://HOST:PORT or http://HOST:PORT/PATH) or --compare A B")
        case (.some, 0):
            texts = [target!]
        case (nil, 2):
            texts = compare
        case (.some, _):
            throw ValidationError("give either a target or --compare A B, not both")
        case (nil, let count):
            throw ValidationError("--compare takes exactly two targets, got \(count)")
        }
        let targets = try texts.map { text throws -> BenchTarget in
            do { return try BenchTarget(parsing: text) } catch { throw ValidationError("\(error)") }
        }
        if targets.count == 2 {
            guard targets[0].kind == targets[1].kind else {
                throw ValidationError(
                    "--compare needs two targets of the same protocol, got \(targets[0]) and \(targets[1])"
                )
            }
            guard (1...100).contains(rounds) else {
                throw ValidationError("--rounds must be from 1 to 100, got \(rounds)")
            }
            if slo != nil { throw ValidationError("--slo applies to one target; run each side on its own to judge it") }
        }
        return try targets.map(makePlan)
    }

    private func makePlan(_ target: BenchTarget) throws -> BenchPlan {
        var plan = BenchPlan(target: target)
        try check(duration > .zero && duration <= .seconds(86_400), "--duration must be more than 0 and at most 24h")
        try check(warmup >= .zero && warmup <= .seconds(3_600), "--warmup must be from 0 to 1h")
        try check(timeout > .zero && timeout <= .seconds(3_600), "--timeout must be more than 0 and at most 1h")
        try check((1...50_000).contains(connections), "--connections must be from 1 to 50000, got \(connections)")
        try check((1...1_024).contains(pipeline), "--pipeline must be from 1 to 1024, got \(pipeline)")
        if let rate {
            try check(rate > 0 && rate <= 10_000_000, "--rate must be more than 0 and at most 10000000/s, got \(rate)")
        }
        if let threads { try check((1...256).contains(threads), "--threads must be from 1 to 256, got \(threads)") }
        try check(
            (1...KeySampler.maximumKeys).contains(keys),
            "--keys must be from 1 to \(KeySampler.maximumKeys), got \(keys)"
        )
        plan.duration = duration
        plan.warmup = warmup
        plan.timeout = timeout
        plan.connections = connections
        plan.pipeline = pipeline
        plan.threads = threads ?? System.coreCount
        plan.rate = rate
        plan.keys = keys
        plan.seed = seed
        plan.pinThreads = pinThreads
        do {
            plan.distribution = try KeyDistribution(parsing: distribution)
        } catch {
            throw ValidationError("--distribution: \(error.description)")
        }
        switch target.kind {
        case .memcache:
            try rejectHTTPOptions()
            try applyMemcacheOptions(to: &plan)
        case .http:
            try rejectMemcacheOptions()
            try applyHTTPOptions(to: &plan)
        }
        return plan
    }

    private func applyMemcacheOptions(to plan: inout BenchPlan) throws {
        let getRatio = memcache.getRatio ?? 0.9
        try check(getRatio.isFinite && (0...1).contains(getRatio), "--get-ratio must be from 0 to 1, got \(getRatio)")
        let valueSize = Int(memcache.valueSize?.bytes ?? 100)
        try check((0...1_048_576).contains(valueSize), "--value-size must be from 0 to 1MiB, got \(valueSize)")
        let keySize = memcache.keySize ?? max(32, BenchPlan.minimumKeySize(keys: keys))
        let shortest = BenchPlan.minimumKeySize(keys: keys)
        try check(
            (shortest...250).contains(keySize),
            "--key-size must be from \(shortest) (to hold \(keys) keys) to 250 (memcached's limit), got \(keySize)"
        )
        let multiget = memcache.multiget ?? 1
        try check((1...100).contains(multiget), "--multiget must be from 1 to 100, got \(multiget)")
        plan.getRatio = getRatio
        plan.valueSize = valueSize
        plan.keySize = keySize
        plan.multiget = multiget
        plan.prefill = !memcache.noPrefill
    }

    private func applyHTTPOptions(to plan: inout BenchPlan) throws {
        let method = http.method ?? "GET"
        try check(isToken(method), "--method must be an HTTP method such as GET or POST, got '\(method)'")
        plan.method = method
        plan.headers = try http.headers.map { line in
            guard let colon = line.firstIndex(of: ":") else {
                throw ValidationError("--header must look like 'Name: value', got '\(line)'")
            }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard isToken(name) else { throw ValidationError("--header '\(line)': '\(name)' is not a header name") }
            guard !value.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw ValidationError("--header '\(line)': the value holds a line break")
            }
            return BenchPlan.HeaderField(name: name, value: value)
        }
        if let body = http.body {
            if body.hasPrefix("@") {
                let path = String(body.dropFirst())
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ValidationError("--body: cannot read the file '\(path)'")
                }
                plan.body = Array(data)
            } else {
                plan.body = Array(body.utf8)
            }
        }
        if let sessions = http.sessions {
            try check((1...1_000_000).contains(sessions), "--sessions must be from 1 to 1000000, got \(sessions)")
            plan.sessions = sessions
        }
        if let name = http.sessionCookie {
            try check(isToken(name), "--session-cookie must be a cookie name, got '\(name)'")
            plan.sessionCookie = name
        }
        plan.keySize = BenchPlan.minimumKeySize(keys: keys)
    }

    private func rejectHTTPOptions() throws {
        let given = [
            http.method.map { _ in "--method" }, http.headers.isEmpty ? nil : "--header",
            http.body.map { _ in "--body" },
            http.sessions.map { _ in "--sessions" }, http.sessionCookie.map { _ in "--session-cookie" },
        ].compactMap { $0 }
        if let first = given.first { throw ValidationError("\(first) applies to http:// targets only") }
    }

    private func rejectMemcacheOptions() throws {
        let given = [
            memcache.getRatio.map { _ in "--get-ratio" }, memcache.valueSize.map { _ in "--value-size" },
            memcache.keySize.map { _ in "--key-size" }, memcache.multiget.map { _ in "--multiget" },
            memcache.noPrefill ? "--no-prefill" : nil,
        ].compactMap { $0 }
        if let first = given.first { throw ValidationError("\(first) applies to memcache:// targets only") }
    }

    private func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ValidationError(message()) }
    }

    private func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                (0x21...0x7E).contains(byte) && !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
            }
    }
}

/// The live progress of a run on standard error: rewritten in place on a terminal, a plain line
/// per second otherwise.
struct ProgressLine: Sendable {
    let enabled: Bool
    let prefix: String
    let terminal = isatty(STDERR_FILENO) != 0

    func show(_ progress: BenchProgress) {
        guard enabled else { return }
        var text = "\(prefix): \(progress.phase == .warmup ? "warm-up" : "measure") "
        text += String(format: "%5.1fs  %@ req/s", progress.elapsed, grouped(progress.rate))
        if progress.phase == .measure {
            text += "  p99 \(formatMicroseconds(progress.p99Microseconds))  errors \(progress.errors)"
        }
        write(terminal ? "\r\u{1B}[2K" + text : text + "\n")
    }

    /// A one-off line, such as the start of the prefill.
    func note(_ text: String) {
        guard enabled else { return }
        write("\(prefix): \(text)\n")
    }

    func finish() {
        if enabled, terminal { write("\r\u{1B}[2K") }
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    private func grouped(_ value: Double) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.maximumFractionDigits = 0
        return formatter.string(from: NSNumber(value: value.rounded())) ?? String(Int(value))
    }

    private func formatMicroseconds(_ micros: Double) -> String {
        micros >= 1000 ? String(format: "%.2f ms", micros / 1000) : String(format: "%.0f µs", micros)
    }
}
