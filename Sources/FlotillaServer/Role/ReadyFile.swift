import Foundation

/// The readiness handshake on disk: `--ready-file PATH` holds, once every listener of the role is
/// bound, `{"role": "cache", "pid": 4242, "listeners": {"admin": "127.0.0.1:39211", "data": …}}`.
///
/// It is written to a temporary file beside PATH and renamed over it, so a reader sees the whole
/// document or none; it is removed when the role starts and when it exits. Whoever starts a role
/// (the supervisor, the demo, the tests) waits for the file instead of reading log lines.
public struct ReadyFile: Sendable {
    /// What the file holds.
    public struct Contents: Codable, Sendable, Equatable {
        public var role: String
        public var pid: Int32
        /// Bound listeners by name (`admin`, `data`) as `HOST:PORT`.
        public var listeners: [String: String]

        public init(role: String, pid: Int32, listeners: [String: String]) {
            self.role = role
            self.pid = pid
            self.listeners = listeners
        }

        /// The port of listener `name`, if it is bound.
        public func port(_ name: String) -> Int? {
            listeners[name].flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }
        }
    }

    public let path: String

    public init(path: String) { self.path = path }

    /// Writes the file atomically (temporary file, then rename).
    public func write(role: String, listeners: [String: String]) throws {
        let contents = Contents(role: role, pid: getpid(), listeners: listeners)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let temporary = path + ".tmp-\(getpid())"
        try encoder.encode(contents).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, "errno": code])
        }
    }

    /// The contents, or nil while the file is absent or not yet whole.
    public func read() -> Contents? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Contents.self, from: data)
    }

    public func remove() {
        unlink(path)
    }
}
