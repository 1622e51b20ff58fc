import FlotillaElection
import Foundation
import Logging
import Synchronization
import Testing

/// Work that records when it ran: the elector must never let two overlap.
private final class RecordingWork: LeaderWork {
    struct Interval {
        var candidate: String
        var token: UInt64
        var start: ContinuousClock.Instant
        var end: ContinuousClock.Instant?
    }

    final class Log: Sendable {
        let intervals = Mutex<[Interval]>([])
    }

    let candidate: String
    let log: Log

    init(candidate: String, log: Log) {
        self.candidate = candidate
        self.log = log
    }

    func lead(_ term: ElectionTerm, stop: StopSignal) async {
        let index = log.intervals.withLock { log in
            log.append(Interval(candidate: candidate, token: term.token, start: .now))
            return log.count - 1
        }
        await stop.wait()
        log.intervals.withLock { $0[index].end = .now }
    }
}

@Suite("Elector on the file coordinator")
struct ElectorTests {
    @Test func handsOverOnShutdownWithoutOverlap() async throws {
        let path = NSTemporaryDirectory() + "flotilla-elector-\(UUID().uuidString).lock"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let intervals = RecordingWork.Log()
        let logger = Logger(label: "test")

        func elector(_ name: String) -> Elector {
            var file = FileCoordinator.Configuration(path: path)
            file.ttl = .seconds(1)
            var configuration = Elector.Configuration(candidate: name)
            configuration.margin = .milliseconds(200)
            configuration.observeInterval = .milliseconds(100)
            return Elector(
                configuration: configuration,
                coordinator: FileCoordinator(configuration: file),
                work: RecordingWork(candidate: name, log: intervals),
                logger: logger
            )
        }

        let electors = ["a", "b", "c"].map(elector)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running: [String: Task<Void, any Error>] = [:]
            for elector in electors {
                running[elector.configuration.candidate] = Task { try await elector.run() }
            }
            // Stop whoever leads, three times; each time another takes over.
            for round in 1...3 {
                let leader = try await waitForLeader(electors, excluding: [], within: .seconds(20))
                #expect(leader.status.term?.token == UInt64(round))
                running[leader.configuration.candidate]?.cancel()
                try await running[leader.configuration.candidate]?.value
                running[leader.configuration.candidate] = nil
                if round < 3 {
                    let next = try await waitForLeader(
                        electors.filter { running[$0.configuration.candidate] != nil },
                        excluding: [],
                        within: .seconds(20)
                    )
                    #expect(next.status.term?.token == UInt64(round + 1))
                }
            }
            group.cancelAll()
        }
        let log = intervals.intervals.withLock { $0 }
        #expect(log.map(\.token) == [1, 2, 3])
        for (earlier, later) in zip(log, log.dropFirst()) {
            let end = try #require(earlier.end)
            #expect(end <= later.start, "work of token \(earlier.token) overlapped token \(later.token)")
            // Immediate, not bound to a TTL: generous for a loaded machine (the benchmark measures it).
            #expect(later.start - end < .seconds(2), "handover took \(later.start - end)")
        }
    }

    private func waitForLeader(
        _ electors: [Elector],
        excluding: Set<String>,
        within timeout: Duration
    ) async throws -> Elector {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let leader = electors.first(where: { $0.status.term != nil }) { return leader }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw CoordinatorError(.unreachable, "no leader within \(timeout)")
    }
}

@Suite("Elector's leadership changes")
struct ElectorChangesTests {
    @Test(.timeLimit(.minutes(1))) func yieldsLeadingThenSteppedDown() async throws {
        let path = NSTemporaryDirectory() + "flotilla-elector-changes-\(UUID().uuidString).lock"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = Elector.Configuration(candidate: "solo")
        configuration.margin = .milliseconds(200)
        let elector = Elector(
            configuration: configuration,
            coordinator: FileCoordinator(configuration: .init(path: path)),
            logger: Logger(label: "test")
        )
        let running = Task { try await elector.run() }
        var changes: [LeadershipChange] = []
        for await change in elector.changes {
            changes.append(change)
            if case .leading = change {
                #expect(elector.status.term?.token == 1)
                running.cancel()
            }
        }
        try await running.value
        let term = ElectionTerm(token: 1, leaderID: "solo", ttl: .seconds(5))
        #expect(changes == [.leading(term), .steppedDown(term, reason: "resigned")])
        #expect(elector.status.term == nil)
    }
}
