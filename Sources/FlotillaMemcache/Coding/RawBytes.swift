import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte searches and comparisons on the decoders' hot paths, done by the C library (`memchr`,
/// `memcmp`), which compares a word or a vector at a time where a Swift collection loop goes byte
/// by byte through generic indices.
enum ByteScan {
    /// The offset of the first `byte` in `bytes[range]`, or nil.
    @inline(__always)
    static func firstIndex(of byte: UInt8, in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, let base = bytes.baseAddress,
            let found = memchr(base + range.lowerBound, Int32(byte), range.count)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// Whether `bytes[range]` starts with `literal`.
    @inline(__always)
    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard range.count >= count, let base = bytes.baseAddress else { return count == 0 }
        return memcmp(base + range.lowerBound, literal.utf8Start, count) == 0
    }

    /// Whether `bytes[range]` is exactly `literal`.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        range.count == literal.utf8CodeUnitCount && hasPrefix(bytes, range, literal)
    }
}

/// Appends a request's fields at a cursor in memory reserved for the whole request: one capacity
/// and ownership check on the buffer, where each `ByteBuffer.write…` call makes its own.
struct RawWriter {
    private let base: UnsafeMutableRawPointer
    private(set) var count = 0

    init(_ base: UnsafeMutableRawPointer) {
        self.base = base
    }

    mutating func put(_ literal: StaticString) {
        (base + count).copyMemory(from: literal.utf8Start, byteCount: literal.utf8CodeUnitCount)
        count += literal.utf8CodeUnitCount
    }

    mutating func put(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            if let start = bytes.baseAddress { (base + count).copyMemory(from: start, byteCount: bytes.count) }
            count += bytes.count
        }
    }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        if let start = bytes.baseAddress { (base + count).copyMemory(from: start, byteCount: bytes.count) }
        count += bytes.count
    }

    /// `VALUE <key> <flags> <length>[ <cas>]\r\n`: at most `ByteBuffer.valueHeaderLimit` bytes.
    mutating func putValueHeader(key: UnsafeRawBufferPointer, flags: UInt32, length: Int, cas: UInt64?) {
        put("VALUE ")
        put(key)
        put(byte: UInt8(ascii: " "))
        put(decimal: UInt64(flags))
        put(byte: UInt8(ascii: " "))
        put(decimal: UInt64(length))
        if let cas {
            put(byte: UInt8(ascii: " "))
            put(decimal: cas)
        }
        put("\r\n")
    }

    mutating func put(byte: UInt8) {
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// At most 20 bytes.
    mutating func put(decimal value: UInt64) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var remaining = value
        for offset in stride(from: count + digits - 1, through: count, by: -1) {
            base.storeBytes(
                of: UInt8(truncatingIfNeeded: remaining % 10) &+ UInt8(ascii: "0"),
                toByteOffset: offset,
                as: UInt8.self
            )
            remaining /= 10
        }
        count += digits
    }

    /// At most 20 bytes.
    mutating func put(decimal value: Int64) {
        if value < 0 {
            put(byte: UInt8(ascii: "-"))
            put(decimal: UInt64(bitPattern: 0 &- value))
        } else {
            put(decimal: UInt64(value))
        }
    }
}

extension ByteBuffer {
    /// Writes what `body` puts, in at most `maximumLength` bytes, with one capacity check.
    mutating func writeFields(maximumLength: Int, _ body: (inout RawWriter) -> Void) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: maximumLength) { target in
            var writer = RawWriter(target.baseAddress!)
            body(&writer)
            precondition(writer.count <= maximumLength, "wrote \(writer.count) bytes into \(maximumLength)")
            return writer.count
        }
    }
}
