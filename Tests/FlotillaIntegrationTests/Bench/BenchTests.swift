import FlotillaTestSupport
import Foundation
import NIOCore
import Testing

/// `flotilla bench` end to end: the real binary against servers whose behaviour is known.
///
/// The nested suites run one test at a time: several of them measure latency, and a second load generator on the
/// same two cores would distort what they measure. Every subprocess has a hard timeout.
@Suite("flotilla bench", .serialized)
struct BenchTests {
    /// Runs `flotilla bench ARGUMENTS`.
    static func bench(_ arguments: [String], timeout: Duration = .seconds(30)) throws -> CommandRun {
        try CommandRun.flotilla(["bench"] + arguments, timeout: timeout)
    }

    /// Runs `flotilla bench ARGUMENTS --json --quiet`, expects exit status `status`, and decodes the report.
    static func benchJSON(
        _ arguments: [String],
        status: Int32 = 0,
        timeout: Duration = .seconds(30),
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (BenchJSONReport, CommandRun) {
        let run = try bench(arguments + ["--json", "--quiet"], timeout: timeout)
        try #require(run.status == status && !run.timedOut, "\(run)", sourceLocation: sourceLocation)
        let report = try BenchJSONReport.decode(run.stdout)
        return (report, run)
    }

    /// The target URL of a delay server.
    static func target(_ server: DelayServer, path: String = "/") -> String {
        switch server.configuration.wireProtocol {
        case .memcache: "memcache://127.0.0.1:\(server.port)"
        case .http: "http://127.0.0.1:\(server.port)\(path)"
        }
    }

    /// The nearest-rank percentile of sorted values: the smallest value with at least `percent` % at or below it.
    static func percentile(_ percent: Double, of sorted: [Double]) -> Double {
        precondition(!sorted.isEmpty)
        let rank = Int((percent / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

extension DelayWireProtocol: CustomTestStringConvertible {
    var testDescription: String {
        switch self {
        case .memcache: "memcache"
        case .http: "http"
        }
    }
}
