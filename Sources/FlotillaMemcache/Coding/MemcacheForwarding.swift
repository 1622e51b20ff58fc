import NIOCore

/// Writes decoded requests back onto the wire, as a proxy forwards them to a shard.
///
/// A proxy must see one reply for every request it forwards to know that the request is done, so these writers never
/// ask a shard for silence: `noreply` and the meta `q` flag are left out, and the proxy applies them to its own
/// client. Everything else is written as the client sent it.
public enum MemcacheForwarding {
    /// `get|gets <key>*\r\n` or `gat|gats <exptime> <key>*\r\n`.
    ///
    /// - Precondition: `operation` is `.get`, `.gets`, `.gat` or `.gats`.
    public static func writeRetrieval(
        operation: MemcacheOperation,
        exptime: Int32,
        keys: some Sequence<ByteBuffer>,
        into buffer: inout ByteBuffer
    ) {
        writeRetrievalCommand(operation: operation, exptime: exptime, into: &buffer)
        for key in keys {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeImmutableBuffer(key)
        }
        buffer.writeStaticString("\r\n")
    }

    /// `get|gets <key>\r\n` or `gat|gats <exptime> <key>\r\n`: the one-key form, which needs no
    /// generic sequence (this module's generics are not specialized in the proxy).
    ///
    /// - Precondition: `operation` is `.get`, `.gets`, `.gat` or `.gats`.
    public static func writeRetrieval(
        operation: MemcacheOperation,
        exptime: Int32,
        key: ByteBuffer,
        into buffer: inout ByteBuffer
    ) {
        // The proxy's most common request: one capacity check rather than one per field.
        buffer.writeFields(maximumLength: 5 + 21 + key.readableBytes + 2) { writer in
            writer.put(retrievalCommand(operation))
            writer.put(byte: UInt8(ascii: " "))
            if operation == .gat || operation == .gats {
                writer.put(decimal: Int64(exptime))
                writer.put(byte: UInt8(ascii: " "))
            }
            writer.put(key)
            writer.put("\r\n")
        }
    }

    private static func retrievalCommand(_ operation: MemcacheOperation) -> StaticString {
        switch operation {
        case .get: "get"
        case .gets: "gets"
        case .gat: "gat"
        case .gats: "gats"
        default: preconditionFailure("\(operation.name) is not a retrieval command")
        }
    }

    private static func writeRetrievalCommand(
        operation: MemcacheOperation,
        exptime: Int32,
        into buffer: inout ByteBuffer
    ) {
        buffer.writeStaticString(retrievalCommand(operation))
        if operation == .gat || operation == .gats {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeDecimal(Int64(exptime))
        }
    }

    /// `<command> <key> <flags> <exptime> <bytes>[ <cas unique>]\r\n<data>\r\n`, without `noreply`.
    public static func writeStorage(_ request: StorageRequest, into buffer: inout ByteBuffer) {
        let command: StaticString
        switch request.mode {
        case .set: command = "set "
        case .add: command = "add "
        case .replace: command = "replace "
        case .append: command = "append "
        case .prepend: command = "prepend "
        case .cas: command = "cas "
        }
        // The command, the key, four numbers of at most 20 bytes after their spaces, the data and
        // two `\r\n`, written with one capacity check.
        let maximumLength =
            command.utf8CodeUnitCount + request.key.readableBytes + 4 * 21 + request.data.readableBytes + 4
        buffer.writeFields(maximumLength: maximumLength) { writer in
            writer.put(command)
            writer.put(request.key)
            writer.put(byte: UInt8(ascii: " "))
            writer.put(decimal: UInt64(request.flags))
            writer.put(byte: UInt8(ascii: " "))
            writer.put(decimal: Int64(request.exptime))
            writer.put(byte: UInt8(ascii: " "))
            writer.put(decimal: UInt64(request.data.readableBytes))
            if request.mode == .cas {
                writer.put(byte: UInt8(ascii: " "))
                writer.put(decimal: request.casUnique)
            }
            writer.put("\r\n")
            writer.put(request.data)
            writer.put("\r\n")
        }
    }

    /// `delete <key>\r\n`.
    public static func writeDelete(key: ByteBuffer, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("delete ")
        buffer.writeImmutableBuffer(key)
        buffer.writeStaticString("\r\n")
    }

    /// `incr|decr <key> <delta>\r\n`, without `noreply`.
    public static func writeArithmetic(_ request: ArithmeticRequest, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(request.increment ? "incr " : "decr ")
        buffer.writeImmutableBuffer(request.key)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeDecimal(request.delta)
        buffer.writeStaticString("\r\n")
    }

    /// `touch <key> <exptime>\r\n`, without `noreply`.
    public static func writeTouch(key: ByteBuffer, exptime: Int32, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("touch ")
        buffer.writeImmutableBuffer(key)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeDecimal(Int64(exptime))
        buffer.writeStaticString("\r\n")
    }

    /// `flush_all[ <delay>]\r\n`, without `noreply`.
    public static func writeFlushAll(delay: Int32?, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("flush_all")
        if let delay {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeDecimal(Int64(delay))
        }
        buffer.writeStaticString("\r\n")
    }

    /// `version\r\n`.
    public static func writeVersion(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("version\r\n")
    }

    /// `stats[ <argument>*]\r\n`.
    public static func writeStats(arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("stats")
        for argument in arguments {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeString(argument)
        }
        buffer.writeStaticString("\r\n")
    }

    /// `mg|md|ma <key> <flags>\r\n`, `ms <key> <bytes> <flags>\r\n<data>\r\n`, `me <key>[ b]\r\n` or `mn\r\n`.
    ///
    /// The flags go out in the order the client sent them, without `q`. A binary key (`b`) was base64-decoded by
    /// the request decoder and is encoded again here.
    public static func writeMeta(_ request: MetaRequest, into buffer: inout ByteBuffer) {
        switch request.command {
        case .noop:
            buffer.writeStaticString("mn\r\n")
            return
        case .debug:
            buffer.writeStaticString("me ")
            writeMetaKey(request, into: &buffer)
            if request.flags.keyIsBinary { buffer.writeStaticString(" b") }
            buffer.writeStaticString("\r\n")
            return
        case .get: buffer.writeStaticString("mg ")
        case .set: buffer.writeStaticString("ms ")
        case .delete: buffer.writeStaticString("md ")
        case .arithmetic: buffer.writeStaticString("ma ")
        }
        writeMetaKey(request, into: &buffer)
        if request.command == .set {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeDecimal(UInt64(request.data?.readableBytes ?? 0))
        }
        for token in request.tokens where token.flag != UInt8(ascii: "q") {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeImmutableBuffer(token.token)
        }
        buffer.writeStaticString("\r\n")
        if request.command == .set {
            if let data = request.data { buffer.writeImmutableBuffer(data) }
            buffer.writeStaticString("\r\n")
        }
    }

    /// A meta request the proxy makes itself (repair, verification, read repair): `mg|ms|md <key> b <flags>\r\n`,
    /// with `ms`'s length before the flags and its data after. The key goes base64-encoded (`b`), so that any key
    /// bytes travel safely; `flags` are the request's own, space-separated (`"v f t c"`), empty for none.
    public static func writeOwnMeta(
        _ command: MetaRequest.Command,
        key: ByteBuffer,
        flags: String,
        data: ByteBuffer? = nil,
        into buffer: inout ByteBuffer
    ) {
        switch command {
        case .get: buffer.writeStaticString("mg ")
        case .set: buffer.writeStaticString("ms ")
        case .delete: buffer.writeStaticString("md ")
        case .arithmetic: buffer.writeStaticString("ma ")
        case .noop, .debug: preconditionFailure("writeOwnMeta writes mg, ms, md and ma only")
        }
        Base64Key.encode(key.readableBytesView, into: &buffer)
        if command == .set {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeDecimal(UInt64(data?.readableBytes ?? 0))
        }
        buffer.writeStaticString(" b")
        if !flags.isEmpty {
            buffer.writeInteger(UInt8(ascii: " "))
            buffer.writeString(flags)
        }
        buffer.writeStaticString("\r\n")
        if command == .set {
            if let data { buffer.writeImmutableBuffer(data) }
            buffer.writeStaticString("\r\n")
        }
    }

    /// True when the client sent the meta `q` flag: the proxy then withholds the replies memcached withholds in
    /// quiet mode (such as `EN` of mg or `HD` of ms), which `writeMeta` asked the shard for all the same.
    public static func metaRequestWasQuiet(_ request: MetaRequest) -> Bool {
        request.tokens.contains { $0.flag == UInt8(ascii: "q") }
    }

    private static func writeMetaKey(_ request: MetaRequest, into buffer: inout ByteBuffer) {
        if request.flags.keyIsBinary {
            Base64Key.encode(request.key.readableBytesView, into: &buffer)
        } else {
            buffer.writeImmutableBuffer(request.key)
        }
    }
}
