import NIOCore

/// Number parsing with the exact acceptance rules of memcached's `safe_strto*` helpers.
///
/// memcached parses numeric tokens with `strtol`/`strtoull` and then checks what follows the
/// digits. Reproducing those rules byte for byte is what makes `flotilla cache` answer malformed
/// numbers the way memcached does (for example `4294967296` as client flags is accepted and
/// truncated to 0, while `-1` is refused).
enum CNumberParsing {
    struct Scan {
        var magnitude: UInt64 = 0
        var negative = false
        var overflow = false
        var digits = 0
        /// Offset of the first byte after the digits (the C `endptr`).
        var end = 0
    }

    @inline(__always)
    static func isCSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
    }

    /// `strtoull`/`strtol`: leading white space, an optional sign, decimal digits.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> Scan {
        var scan = Scan()
        var index = 0
        while index < bytes.count, isCSpace(bytes[index]) { index += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            scan.negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let digit = UInt64(bytes[index] &- UInt8(ascii: "0"))
            let (times10, o1) = scan.magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(digit)
            if o1 || o2 { scan.overflow = true }
            scan.magnitude = sum
            scan.digits += 1
            index += 1
        }
        scan.end = scan.digits == 0 ? 0 : index
        return scan
    }

    /// The C rule shared by every `safe_strto*`: something was converted and the next byte is
    /// white space or the end of the token.
    @inline(__always)
    static func endsCleanly(_ bytes: UnsafeRawBufferPointer, _ scan: Scan) -> Bool {
        guard scan.digits > 0 else { return false }
        return scan.end == bytes.count || isCSpace(bytes[scan.end])
    }

    /// memcached `safe_strtoull`: unsigned 64-bit; a minus sign is refused when it would wrap.
    static func strtoull(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let scan = scan(bytes)
        guard !scan.overflow, endsCleanly(bytes, scan) else { return nil }
        let value = scan.negative ? (0 &- scan.magnitude) : scan.magnitude
        if Int64(bitPattern: value) < 0, bytes[..<scan.end].contains(UInt8(ascii: "-")) {
            return nil
        }
        return value
    }

    /// memcached `safe_strtoul` into a `uint32_t`: parsed as unsigned long, then truncated.
    static func strtoul32(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        let scan = scan(bytes)
        guard !scan.overflow, endsCleanly(bytes, scan) else { return nil }
        let value = scan.negative ? (0 &- scan.magnitude) : scan.magnitude
        if Int64(bitPattern: value) < 0, bytes.contains(UInt8(ascii: "-")) {
            return nil
        }
        return UInt32(truncatingIfNeeded: value)
    }

    /// memcached `safe_strtol` into an `int32_t`: parsed as long, then truncated.
    static func strtol32(_ bytes: UnsafeRawBufferPointer) -> Int32? {
        let scan = scan(bytes)
        guard endsCleanly(bytes, scan) else { return nil }
        let limit: UInt64 = scan.negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
        guard !scan.overflow, scan.magnitude <= limit else { return nil }
        let value = scan.negative ? Int64(bitPattern: 0 &- scan.magnitude) : Int64(scan.magnitude)
        return Int32(truncatingIfNeeded: value)
    }

    /// Parses the data of a stored item as `do_add_delta` does: `strtoull` over the bytes, which
    /// are followed by `\r\n` in memcached's item memory (so the end counts as white space).
    static func itemValue(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        let scan = scan(bytes)
        guard !scan.overflow, scan.digits > 0 else { return nil }
        guard scan.end == bytes.count || isCSpace(bytes[scan.end]) else { return nil }
        let value = scan.negative ? (0 &- scan.magnitude) : scan.magnitude
        if Int64(bitPattern: value) < 0, bytes[..<scan.end].contains(UInt8(ascii: "-")) {
            return nil
        }
        return value
    }
}

/// Number rules of memcached that the cache engine needs outside the decoder.
public enum MemcacheNumbers {
    /// Reads a stored value as a 64-bit unsigned decimal the way `incr`/`decr` do; nil when
    /// memcached would answer "cannot increment or decrement non-numeric value".
    public static func itemValue(_ value: ByteBuffer) -> UInt64? {
        value.withUnsafeReadableBytes { CNumberParsing.itemValue($0) }
    }
}
