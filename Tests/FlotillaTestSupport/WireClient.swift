import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small blocking TCP client for talking raw bytes to a server under test.
///
/// It deliberately sits below any protocol library: the differential tests need to control exactly how bytes are
/// split across `send` calls and to see exactly what comes back, including a peer closing the connection.
/// Every wait is bounded: reads use `SO_RCVTIMEO` plus an overall deadline, and every loop has an iteration cap,
/// so a misbehaving server turns into a failed test rather than a hung one.
public final class WireClient {
    /// Why a read stopped.
    public enum ReadOutcome: Equatable {
        /// The caller's condition was met.
        case satisfied
        /// The peer closed the connection (or reset it).
        case closed
        /// The deadline passed first.
        case timedOut
    }

    /// What a bounded read collected.
    public struct ReadResult {
        public var bytes: [UInt8]
        public var outcome: ReadOutcome
    }

    /// Errors raised when the connection cannot be established or used.
    public struct WireError: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    private var fd: Int32
    /// Bytes received but not yet handed to a caller; filled opportunistically while sending so that a server
    /// which writes replies while we are still writing requests can never deadlock against us.
    private var pending: [UInt8] = []
    /// Set once recv reports end of stream or a reset.
    private(set) var peerClosed = false

    /// Connects to `127.0.0.1:port`, retrying briefly because a freshly started server may not be listening yet.
    public init(port: UInt16, connectTimeout: Duration = .seconds(5)) throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: connectTimeout)
        var lastErrno: Int32 = 0
        for _ in 0..<500 {
            let candidate = try Self.tryConnect(port: port, errnoOut: &lastErrno)
            if let candidate {
                self.fd = candidate
                return
            }
            if clock.now >= deadline { break }
            usleep(10_000)
        }
        throw WireError(description: "connect to 127.0.0.1:\(port) failed: errno \(lastErrno)")
    }

    deinit {
        if fd >= 0 { closeDescriptor(fd) }
    }

    /// Attempts one connection; returns nil on a retryable failure.
    private static func tryConnect(port: UInt16, errnoOut: inout Int32) throws -> Int32? {
        guard let fd = LoopbackSocket.open() else { throw WireError(description: "socket() failed: errno \(errno)") }
        var address = LoopbackSocket.address(port: port)
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            errnoOut = errno
            closeDescriptor(fd)
            return nil
        }
        // Short receive timeout: reads poll in small steps against an overall deadline.
        var receiveTimeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receiveTimeout, socklen_t(MemoryLayout<timeval>.size))
        var sendTimeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        // Without TCP_NODELAY, Nagle would coalesce our deliberately tiny chunks and defeat the framing tests.
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // Avoid SIGPIPE killing the test process when a server closed on us (e.g. after `quit`).
        #if canImport(Darwin)
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        return fd
    }

    /// Sends `bytes` as one logical write, looping over partial sends within `timeout`.
    ///
    /// Returns false if the peer closed or the timeout passed; replies arriving meanwhile are kept for `read`.
    @discardableResult
    public func send(_ bytes: [UInt8], timeout: Duration = .seconds(5)) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var offset = 0
        var iterations = 0
        while offset < bytes.count {
            iterations += 1
            if iterations > 100_000 || clock.now >= deadline || peerClosed { return false }
            let sent = bytes.withUnsafeBytes { raw in
                #if canImport(Glibc)
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                #else
                Darwin.send(fd, raw.baseAddress! + offset, raw.count - offset, 0)
                #endif
            }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                // The server is not reading; it may be blocked writing replies to us, so drain them.
                drainAvailable()
            } else {
                peerClosed = true
                return false
            }
        }
        return true
    }

    /// Sends `bytes` split at the given chunk sizes, optionally pausing between chunks so that the server sees
    /// them in separate reads. The sizes are consumed in order; any remainder goes out in one final chunk.
    @discardableResult
    public func send(_ bytes: [UInt8], chunkSizes: [Int], pauseMicroseconds: [UInt32] = []) -> Bool {
        var offset = 0
        var index = 0
        while offset < bytes.count {
            let size = index < chunkSizes.count ? max(1, chunkSizes[index]) : bytes.count - offset
            let end = min(bytes.count, offset + size)
            guard send(Array(bytes[offset..<end])) else { return false }
            if index < pauseMicroseconds.count, pauseMicroseconds[index] > 0 {
                usleep(pauseMicroseconds[index])
            }
            drainAvailable()
            offset = end
            index += 1
        }
        return true
    }

    /// Moves whatever is already readable into the pending buffer without blocking.
    func drainAvailable() {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<1_000 {
            let count = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress!, raw.count, Int32(MSG_DONTWAIT))
            }
            if count > 0 {
                pending.append(contentsOf: buffer[0..<count])
            } else {
                if count == 0 { peerClosed = true }
                if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { peerClosed = true }
                return
            }
        }
    }

    /// Reads until `condition` holds for the bytes collected so far (including bytes pending from earlier sends),
    /// the peer closes, or `timeout` passes. Returns everything collected and removes it from the buffer.
    public func read(timeout: Duration, until condition: ([UInt8]) -> Bool) -> ReadResult {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var outcome = ReadOutcome.timedOut
        // Each iteration blocks at most SO_RCVTIMEO, so the cap is only a backstop against a spinning peer.
        for _ in 0..<1_000_000 {
            if condition(pending) {
                outcome = .satisfied
                break
            }
            if peerClosed {
                outcome = .closed
                break
            }
            if clock.now >= deadline { break }
            let count = buffer.withUnsafeMutableBytes { raw in
                recv(fd, raw.baseAddress!, raw.count, 0)
            }
            if count > 0 {
                pending.append(contentsOf: buffer[0..<count])
            } else if count == 0 {
                peerClosed = true
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                peerClosed = true
            }
        }
        let bytes = pending
        pending.removeAll()
        return ReadResult(bytes: bytes, outcome: outcome)
    }

    /// Closes the socket; further sends fail and reads report `.closed`.
    public func close() {
        if fd >= 0 {
            closeDescriptor(fd)
            fd = -1
        }
        peerClosed = true
    }
}

/// `close(2)`, named apart from `WireClient.close()` so the call sites are unambiguous on every platform.
private func closeDescriptor(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #else
    _ = Darwin.close(fd)
    #endif
}

/// The socket and address every test client and port probe uses: TCP over IPv4 loopback.
enum LoopbackSocket {
    /// A new TCP socket, or nil (errno says why).
    static func open() -> Int32? {
        #if canImport(Glibc)
        let socketType = Int32(SOCK_STREAM.rawValue)
        #else
        let socketType = SOCK_STREAM
        #endif
        let fd = socket(AF_INET, socketType, 0)
        return fd >= 0 ? fd : nil
    }

    /// 127.0.0.1:`port` (0: let the kernel choose).
    static func address(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
