import NIOCore
import Synchronization

/// The open client connections, for `stats conns`: each with its addresses and when it last sent
/// a command. A connection updates its own entry once per read (one relaxed atomic store).
final class ConnectionRegistry: Sendable {
    final class Entry: Sendable {
        /// Increasing from 1 in the order connections were accepted (memcached shows descriptors).
        let id: Int
        /// `tcp:HOST:PORT` of the client and of the listener it came through.
        let remote: String
        let local: String
        /// Cache seconds of the last read.
        private let lastCommand: Atomic<UInt32>

        init(id: Int, remote: String, local: String, now: UInt32) {
            self.id = id
            self.remote = remote
            self.local = local
            self.lastCommand = Atomic(now)
        }

        @inline(__always)
        func touch(now: UInt32) {
            lastCommand.store(now, ordering: .relaxed)
        }

        func secondsSinceLastCommand(now: UInt32) -> UInt32 {
            now &- min(now, lastCommand.load(ordering: .relaxed))
        }
    }

    private let entries = Mutex<[Int: Entry]>([:])
    private let nextID = Atomic<Int>(0)

    /// Registers a connection that has just opened.
    func add(remote: SocketAddress?, local: SocketAddress?, now: UInt32) -> Entry {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let entry = Entry(id: id, remote: Self.describe(remote), local: Self.describe(local), now: now)
        entries.withLock { $0[id] = entry }
        return entry
    }

    func remove(_ entry: Entry) {
        _ = entries.withLock { $0.removeValue(forKey: entry.id) }
    }

    /// The open connections, oldest first.
    func snapshot() -> [Entry] {
        entries.withLock { Array($0.values) }.sorted { $0.id < $1.id }
    }

    /// memcached's form: `tcp:127.0.0.1:11211`, `tcp6:[::1]:11211`.
    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown" }
        switch address {
        case .v6: return "tcp6:[\(ip)]:\(port)"
        default: return "tcp:\(ip):\(port)"
        }
    }
}
