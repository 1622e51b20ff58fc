import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One reply line of the memcached text protocol, as a client reads it.
enum MemcacheReply: Equatable {
    /// `VALUE key flags bytes [cas]`: one hit of a get; its data block is skipped by the parser.
    case value
    /// `END`: the get is complete.
    case end
    /// `STORED`.
    case stored
    /// A reply that fails the request, by error kind (`ERROR`, `NOT_STORED`, `SERVER_ERROR …`).
    case failure(kind: String)
    /// Not memcached's protocol: the connection can no longer be trusted.
    case malformed
}

/// Reads memcached text-protocol replies incrementally. Value data is skipped as it arrives, so a
/// large value never has to be buffered whole; only a partial reply line is ever left over.
struct MemcacheReplyParser {
    /// Bytes of value data (plus its CRLF) still to skip before the next reply line.
    private var skip = 0
    /// A reply line longer than this is malformed (memcached's own lines are short).
    static let maximumLineLength = 2048

    /// The next reply in `buffer`, consuming it; nil when `buffer` holds no complete reply line.
    mutating func next(_ buffer: inout ByteBuffer) -> MemcacheReply? {
        if skip > 0 {
            let available = min(skip, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: available)
            skip -= available
            if skip > 0 { return nil }
        }
        let (consumed, reply, dataBytes) = buffer.withUnsafeReadableBytes { raw -> (Int, MemcacheReply?, Int) in
            guard let base = raw.baseAddress, raw.count > 0 else { return (0, nil, 0) }
            guard let newline = memchr(base, 0x0A, raw.count) else {
                return raw.count > Self.maximumLineLength ? (0, .malformed, 0) : (0, nil, 0)
            }
            let lineEnd = base.distance(to: UnsafeRawPointer(newline))
            var length = lineEnd
            if length > 0, raw[length - 1] == UInt8(ascii: "\r") { length -= 1 }
            let line = UnsafeRawBufferPointer(rebasing: raw[0..<length])
            let (reply, data) = Self.classify(line)
            return (lineEnd + 1, reply, data)
        }
        guard let reply else { return nil }
        buffer.moveReaderIndex(forwardBy: consumed)
        if reply == .value { skip = dataBytes + 2 }
        return reply
    }

    /// What a reply line means, and for `VALUE` the length of its data block.
    private static func classify(_ line: UnsafeRawBufferPointer) -> (MemcacheReply, Int) {
        guard let first = line.first else { return (.malformed, 0) }
        switch first {
        case UInt8(ascii: "V"):
            guard let bytes = valueLength(line) else { return (.malformed, 0) }
            return (.value, bytes)
        case UInt8(ascii: "E"):
            if equals(line, "END") { return (.end, 0) }
            if equals(line, "ERROR") { return (.failure(kind: "error"), 0) }
            if equals(line, "EXISTS") { return (.failure(kind: "not_stored"), 0) }
        case UInt8(ascii: "S"):
            if equals(line, "STORED") { return (.stored, 0) }
            if hasPrefix(line, "SERVER_ERROR") { return (.failure(kind: "server_error"), 0) }
        case UInt8(ascii: "N"):
            if equals(line, "NOT_STORED") || equals(line, "NOT_FOUND") { return (.failure(kind: "not_stored"), 0) }
        case UInt8(ascii: "C"):
            if hasPrefix(line, "CLIENT_ERROR") { return (.failure(kind: "client_error"), 0) }
        default:
            break
        }
        return (.malformed, 0)
    }

    /// The `bytes` field of `VALUE <key> <flags> <bytes> [<cas>]`, or nil if the line is not that.
    private static func valueLength(_ line: UnsafeRawBufferPointer) -> Int? {
        guard hasPrefix(line, "VALUE ") else { return nil }
        var index = 6
        // Skip the key and the flags: two space-terminated fields.
        for _ in 0..<2 {
            let start = index
            while index < line.count, line[index] != UInt8(ascii: " ") { index += 1 }
            guard index > start, index < line.count else { return nil }
            index += 1
        }
        var value = 0
        let start = index
        while index < line.count, line[index] != UInt8(ascii: " ") {
            let digit = line[index] &- UInt8(ascii: "0")
            guard digit < 10, value < 1 << 40 else { return nil }
            value = value * 10 + Int(digit)
            index += 1
        }
        return index > start ? value : nil
    }

    private static func equals(_ line: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        line.count == text.utf8CodeUnitCount && hasPrefix(line, text)
    }

    private static func hasPrefix(_ line: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard line.count >= count else { return false }
        return memcmp(line.baseAddress!, text.utf8Start, count) == 0
    }
}
