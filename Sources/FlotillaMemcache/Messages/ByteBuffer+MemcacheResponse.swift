import NIOCore

/// Writers for the replies of the text and meta protocols.
extension ByteBuffer {
    /// Writes `message` and the protocol's line terminator.
    @inlinable
    public mutating func writeMemcacheLine(_ message: StaticString) {
        self.writeStaticString(message)
        self.writeStaticString("\r\n")
    }

    /// memcached's binary-protocol response "Unknown command" (status 0x0081) to a request with
    /// `opcode` and `opaque`: a 24-byte header and the message, as memcached answers an opcode it
    /// does not know.
    public mutating func writeBinaryUnknownCommand(opcode: UInt8, opaque: UInt32) {
        let message = "Unknown command"
        writeInteger(UInt8(0x81))  // response magic
        writeInteger(opcode)
        writeInteger(UInt16(0))  // key length
        writeInteger(UInt8(0))  // extras length
        writeInteger(UInt8(0))  // data type
        writeInteger(UInt16(0x0081))  // status: unknown command
        writeInteger(UInt32(message.utf8.count))  // total body length
        writeInteger(opaque)
        writeInteger(UInt64(0))  // CAS
        writeString(message)
    }

    /// Writes an unsigned integer in decimal, without allocating.
    @inlinable
    public mutating func writeDecimal(_ value: UInt64) {
        if value < 10 {
            self.writeInteger(UInt8(truncatingIfNeeded: value) &+ UInt8(ascii: "0"))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes hold the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &digits) { scratch in
            var remaining = value
            var index = scratch.count
            while remaining > 0 {
                index -= 1
                scratch[index] = UInt8(truncatingIfNeeded: remaining % 10) &+ UInt8(ascii: "0")
                remaining /= 10
            }
            self.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[index...]))
        }
    }

    /// A retrieval's reply: `hits` (its `VALUE` blocks, as a shard sent them) and `END\r\n`, written
    /// with one capacity check (every hit a proxy forwards passes here).
    public mutating func writeRetrievalReply(hits: ByteBuffer) {
        writeFields(maximumLength: hits.readableBytes + 5) { writer in
            writer.put(hits)
            writer.put("END\r\n")
        }
    }

    /// Writes a signed integer in decimal.
    @inlinable
    public mutating func writeDecimal(_ value: Int64) {
        if value < 0 {
            self.writeInteger(UInt8(ascii: "-"))
            self.writeDecimal(UInt64(bitPattern: 0 &- value))
        } else {
            self.writeDecimal(UInt64(value))
        }
    }

    /// `VALUE <key> <flags> <bytes>[ <cas unique>]\r\n`
    @inlinable
    public mutating func writeValueHeader(key: ByteBuffer, flags: UInt32, length: Int, cas: UInt64?) {
        key.withUnsafeReadableBytes { self.writeValueHeader(keyBytes: $0, flags: flags, length: length, cas: cas) }
    }

    /// The same, for a key held as bytes, with one capacity check.
    public mutating func writeValueHeader(
        keyBytes key: UnsafeRawBufferPointer,
        flags: UInt32,
        length: Int,
        cas: UInt64?
    ) {
        writeFields(maximumLength: Self.valueHeaderLimit(keyLength: key.count)) { writer in
            writer.putValueHeader(key: key, flags: flags, length: length, cas: cas)
        }
    }

    /// A hit's whole block, `VALUE <key> <flags> <bytes>[ <cas unique>]\r\n<value>\r\n`, from
    /// bytes held elsewhere (the cache's items), with one capacity check: written field by field,
    /// each `ByteBuffer.write…` call checks capacity and ownership again, a dozen times a hit.
    public mutating func writeValueBlock(
        key: UnsafeRawBufferPointer,
        value: UnsafeRawBufferPointer,
        flags: UInt32,
        cas: UInt64?
    ) {
        writeFields(maximumLength: Self.valueHeaderLimit(keyLength: key.count) + value.count + 2) { writer in
            writer.putValueHeader(key: key, flags: flags, length: value.count, cas: cas)
            writer.put(value)
            writer.put("\r\n")
        }
    }

    /// The longest `VALUE` line for a key of `keyLength` bytes: `VALUE `, the key, and a space and
    /// at most 10, 20 and 20 digits for flags, length and CAS, then CRLF.
    @inline(__always)
    static func valueHeaderLimit(keyLength: Int) -> Int {
        6 + keyLength + 11 + 21 + 21 + 2
    }

    /// ` k<key>`, or ` k<base64 key> b` for a binary key, as meta replies echo keys.
    public mutating func writeMetaKey(_ key: ByteBuffer, binary: Bool) {
        key.withUnsafeReadableBytes { self.writeMetaKey(bytes: $0, binary: binary) }
    }

    /// The same, for a key held as bytes (the cache's items).
    public mutating func writeMetaKey(bytes key: UnsafeRawBufferPointer, binary: Bool) {
        self.writeStaticString(" k")
        if binary {
            Base64Key.encode(key, into: &self)
            self.writeStaticString(" b")
        } else {
            self.writeBytes(key)
        }
    }

    /// A space and the flag's whole token (for opaque `O…` echoes).
    public mutating func writeMetaEcho(_ token: ByteBuffer) {
        self.writeInteger(UInt8(ascii: " "))
        self.writeImmutableBuffer(token)
    }

    /// A space, the flag letter and a number (`t30`, `c12`).
    public mutating func writeMetaNumber(_ flag: UInt8, _ value: UInt64) {
        self.writeInteger(UInt8(ascii: " "))
        self.writeInteger(flag)
        self.writeDecimal(value)
    }
}
