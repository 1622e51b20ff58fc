import CFlotillaSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One machine's coordinator: an OS file lock (`flock`), released by the kernel the instant its
/// holder dies, however it dies.
///
/// The file also keeps the election's state, written only by the lock's holder: the fencing
/// counter, incremented on every acquisition and synced to disk before the term is returned, and
/// the leader's id. A file lock has no lease: a leader that is paused (SIGSTOP) keeps the lock,
/// and nobody else leads until it resumes or dies. The leader's child inherits the locked
/// descriptor (`descriptorForChild`), so the lock outlives the elector until the child is gone too.
public final class FileCoordinator: ElectionCoordinator {
    /// How the file coordinator waits and what it reports.
    public struct Configuration: Sendable {
        /// The lock file; created (mode 0644) when missing.
        public var path: String
        /// Reported as the term's TTL: how often the elector checks that the lock is still this
        /// process's (default 5s).
        public var ttl: Duration = .seconds(5)
        /// How often a standby tries the lock (default 5ms): a bound on the handover time.
        public var pollInterval: Duration = .milliseconds(5)

        public init(path: String) {
            self.path = path
        }
    }

    /// What the file holds: one JSON object.
    struct Content: Codable {
        var token: UInt64
        var leader: String?
    }

    /// The open file description that holds the lock, while this process leads.
    private struct Held {
        var descriptor: Int32
        var token: UInt64
        var device: UInt64
        var inode: UInt64
    }

    public let configuration: Configuration
    private let held = Mutex<Held?>(nil)

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    public var description: String { "file:\(configuration.path)" }

    // MARK: ElectionCoordinator

    public func campaign(candidate: String) async throws -> ElectionTerm {
        while true {
            try Task.checkCancellation()
            if let term = try tryAcquire(candidate: candidate) { return term }
            try await Task.sleep(for: configuration.pollInterval)
        }
    }

    public func keepAlive(_ term: ElectionTerm) async throws -> KeepAliveResult {
        let current = held.withLock { $0 }
        guard let current, current.token == term.token else { return .lost }
        // The lock protects the file's inode: when the path was removed or replaced, a new
        // candidate can lock a new file, so this term is over.
        guard let identity = Self.identity(path: configuration.path),
            identity.device == current.device, identity.inode == current.inode
        else { return .lost }
        return .held(ttl: configuration.ttl)
    }

    public func resign(_ term: ElectionTerm) async throws {
        let current = held.withLock { held -> Held? in
            guard let value = held, value.token == term.token else { return nil }
            held = nil
            return value
        }
        guard let current else { return }
        // Clear the leader, keep the counter; then the lock goes with the descriptor.
        try? Self.write(Content(token: current.token, leader: nil), to: current.descriptor)
        close(current.descriptor)
    }

    public func leader() async throws -> LeaderRecord? {
        let descriptor = open(configuration.path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw CoordinatorError(.io, "cannot open \(configuration.path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        // A free lock means nobody leads, whatever the file says (its holder may have died).
        if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return nil
        }
        guard let content = try Self.read(descriptor), let leader = content.leader else { return nil }
        return LeaderRecord(id: leader, token: content.token)
    }

    public func descriptorForChild(of term: ElectionTerm) -> Int32? {
        held.withLock { held -> Int32? in
            guard let held, held.token == term.token else { return nil }
            // Inheritable from now on: `flotilla elect` starts no other child than the leader's.
            _ = fcntl(held.descriptor, F_SETFD, 0)
            return held.descriptor
        }
    }

    public func shutdown() async {
        let current = held.withLock { held -> Held? in
            defer { held = nil }
            return held
        }
        if let current { close(current.descriptor) }
    }

    // MARK: The file

    /// One attempt at the lock; the term when it was won.
    private func tryAcquire(candidate: String) throws -> ElectionTerm? {
        let path = configuration.path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CoordinatorError(.io, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            close(descriptor)
            if error == EWOULDBLOCK || error == EINTR { return nil }
            throw CoordinatorError(.io, "cannot lock \(path): \(String(cString: strerror(error)))")
        }
        // Locked, but maybe a file that was unlinked since we opened it: then retry on the new one.
        guard let locked = Self.identity(descriptor: descriptor), let identity = Self.identity(path: path),
            identity == locked
        else {
            close(descriptor)
            return nil
        }
        do {
            let previous = try Self.read(descriptor)?.token ?? 0
            let token = previous + 1
            try Self.write(Content(token: token, leader: candidate), to: descriptor)
            held.withLock {
                $0 = Held(descriptor: descriptor, token: token, device: identity.device, inode: identity.inode)
            }
            return ElectionTerm(token: token, leaderID: candidate, ttl: configuration.ttl)
        } catch {
            close(descriptor)
            throw error
        }
    }

    private struct Identity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    private static func identity(path: String) -> Identity? {
        var device: UInt64 = 0
        var inode: UInt64 = 0
        guard flotilla_file_identity(-1, path, &device, &inode) == 0 else { return nil }
        return Identity(device: device, inode: inode)
    }

    private static func identity(descriptor: Int32) -> Identity? {
        var device: UInt64 = 0
        var inode: UInt64 = 0
        guard flotilla_file_identity(descriptor, nil, &device, &inode) == 0 else { return nil }
        return Identity(device: device, inode: inode)
    }

    /// The file's content; nil when empty. Anything else that does not parse is an error: the
    /// counter must never silently restart.
    static func read(_ descriptor: Int32) throws -> Content? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var offset: off_t = 0
        while bytes.count < 1 << 16 {
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else {
                throw CoordinatorError(.io, "cannot read the lock file: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[..<count])
            offset += off_t(count)
        }
        if bytes.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") }) { return nil }
        do {
            return try JSONDecoder().decode(Content.self, from: Data(bytes))
        } catch {
            throw CoordinatorError(
                .protocolError,
                "the lock file does not hold Flotilla's election state ({\"token\":N,\"leader\":ID}); refusing to reset its fencing counter"
            )
        }
    }

    /// The size of the state block: written whole by one `pwrite`, so a crash leaves the old
    /// block or the new one, never a mix (the id is at most `maximumIDLength` bytes).
    static let blockSize = 512
    public static let maximumIDLength = 256

    /// Replaces the file's content and syncs it: a token must be on disk before it is used.
    static func write(_ content: Content, to descriptor: Int32) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var bytes = Array(try encoder.encode(content))
        guard bytes.count < blockSize else {
            throw CoordinatorError(.io, "the election state does not fit the lock file's \(blockSize)-byte block")
        }
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: blockSize - 1 - bytes.count) + [UInt8(ascii: "\n")]
        let count = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard count == bytes.count else {
            throw CoordinatorError(.io, "cannot write the lock file: \(String(cString: strerror(errno)))")
        }
        guard ftruncate(descriptor, off_t(blockSize)) == 0, fsync(descriptor) == 0 else {
            throw CoordinatorError(.io, "cannot sync the lock file: \(String(cString: strerror(errno)))")
        }
    }
}
