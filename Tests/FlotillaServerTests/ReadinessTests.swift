import Foundation
import Testing

@testable import FlotillaServer

@Suite("Readiness: listeners and the ready file")
struct ReadinessTests {
    @Test("waiting for the listeners returns once every expected one is bound, in any order")
    func waitsForEveryListener() async {
        let readiness = Readiness()
        readiness.bound("data", address: "127.0.0.1:4000")
        readiness.expectListeners(["admin", "data"])
        async let bound: Void = readiness.allListenersBound()
        readiness.bound("admin", address: "127.0.0.1:4001")
        await bound
        #expect(readiness.listeners == ["admin": "127.0.0.1:4001", "data": "127.0.0.1:4000"])
    }

    @Test("a cancelled wait returns although a listener never bound", .timeLimit(.minutes(1)))
    func cancelledWaitReturns() async {
        let readiness = Readiness()
        readiness.expectListeners(["admin", "data"])
        readiness.bound("admin", address: "127.0.0.1:4001")
        let waiting = Task { await readiness.allListenersBound() }
        waiting.cancel()
        await waiting.value
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await readiness.allListenersBound()
        }
        await early.value
        #expect(readiness.listeners == ["admin": "127.0.0.1:4001"])
    }

    @Test("with nothing expected, the wait returns at once")
    func nothingExpected() async {
        let readiness = Readiness()
        await readiness.allListenersBound()
        #expect(readiness.listeners.isEmpty)
    }

    @Test("a drain is final: a dependency coming back does not make a draining role ready")
    func drainIsFinal() {
        let readiness = Readiness()
        readiness.markReady()
        #expect(readiness.current == .ready)
        readiness.markDraining()
        readiness.set(ready: true)
        #expect(readiness.current == .draining)
    }

    @Test("the ready file is written whole, read back, and removed")
    func readyFileRoundTrip() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("ready-\(UUID().uuidString).json").path
        let file = ReadyFile(path: path)
        #expect(file.read() == nil)
        try file.write(role: "cache", listeners: ["admin": "127.0.0.1:9100", "data": "[::1]:11211"])
        let contents = try #require(file.read())
        #expect(contents.role == "cache")
        #expect(contents.pid == getpid())
        #expect(contents.port("data") == 11211)
        #expect(contents.port("admin") == 9100)
        #expect(contents.port("http") == nil)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path)
            .filter { $0.hasPrefix((path as NSString).lastPathComponent + ".tmp") }
        #expect(leftovers.isEmpty)
        file.remove()
        #expect(file.read() == nil)
    }
}
