import FlotillaElection
import Foundation
import Testing

@Suite("File coordinator: an OS file lock with a fencing counter")
final class FileCoordinatorTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "flotilla-file-coordinator-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Each test has its own directory: removed after it, whatever it did.
    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func coordinator(_ name: String = "lock") -> FileCoordinator {
        var configuration = FileCoordinator.Configuration(path: directory + "/" + name)
        configuration.ttl = .seconds(2)
        return FileCoordinator(configuration: configuration)
    }

    @Test func oneLeaderAtATimeWithIncreasingTokens() async throws {
        let a = coordinator()
        let b = coordinator()
        let first = try await a.campaign(candidate: "a")
        #expect(first.token == 1)
        #expect(try await b.leader() == LeaderRecord(id: "a", token: 1))

        // b waits while a holds the lock; a's resign hands over.
        let waiting = Task { try await b.campaign(candidate: "b") }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await a.keepAlive(first) == .held(ttl: .seconds(2)))
        let resignedAt = ContinuousClock.now
        try await a.resign(first)
        let second = try await waiting.value
        // At once (the benchmark measures how fast): generous for a loaded machine.
        #expect(ContinuousClock.now - resignedAt < .seconds(2))
        #expect(second.token == 2)
        #expect(try await a.leader() == LeaderRecord(id: "b", token: 2))
        #expect(try await a.keepAlive(first) == .lost)

        await b.shutdown()
        // The holder closed the file without resigning (as on a crash): the lock is free, and
        // nobody leads whatever the file still says.
        #expect(try await a.leader() == nil)
        let third = try await a.campaign(candidate: "a")
        #expect(third.token == 3)
        await a.shutdown()
    }

    @Test func aRemovedLockFileEndsTheTerm() async throws {
        let a = coordinator()
        let term = try await a.campaign(candidate: "a")
        try FileManager.default.removeItem(atPath: directory + "/lock")
        #expect(try await a.keepAlive(term) == .lost)
        await a.shutdown()
    }

    @Test func aForeignFileIsNotReset() async throws {
        try Data("not an election\n".utf8).write(to: URL(fileURLWithPath: directory + "/foreign"))
        let a = coordinator("foreign")
        await #expect(throws: CoordinatorError.self) { try await a.campaign(candidate: "a") }
        await a.shutdown()
    }

    @Test func anUnwritableDirectoryIsAClearError() async throws {
        var configuration = FileCoordinator.Configuration(path: "/proc/flotilla-cannot-be-here/lock")
        configuration.ttl = .seconds(1)
        let a = FileCoordinator(configuration: configuration)
        do {
            _ = try await a.campaign(candidate: "a")
            Issue.record("campaign on an impossible path succeeded")
        } catch let error as CoordinatorError {
            #expect(error.code == .io)
            #expect(error.message.contains("/proc/flotilla-cannot-be-here/lock"))
        }
    }

    @Test func cancellingACampaignWithdrawsIt() async throws {
        let a = coordinator()
        let b = coordinator()
        let term = try await a.campaign(candidate: "a")
        let waiting = Task { try await b.campaign(candidate: "b") }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        try await a.resign(term)
        #expect(try await a.leader() == nil)
        await b.shutdown()
    }
}
