import FlotillaCore
import NIOCore

/// What a forwarded request gets back; the proxy knows it for every request in flight.
public enum ExpectedReply: Sendable {
    /// get, gets, gat, gats: `VALUE` blocks up to `END`.
    case retrieval
    /// get, gets, gat, gats of one key: one `VALUE` block and `END`, or `END`. A hit comes back as
    /// `ShardReply.value`, without the array of `.values` (a miss is an empty `.values`).
    case retrievalOfOne
    /// One line: storage commands, delete, incr/decr, touch, flush_all, verbosity.
    case line
    /// One meta reply (`mg`, `ms`, `md`, `ma`, `mn`, `me`).
    case meta
    /// `STAT` lines up to `END` (and the `ITEM` lines of `stats cachedump`, as stats named `ITEM`).
    case stats
    /// `VERSION x`.
    case version
}

/// Frames and parses a shard's replies, one reply per call: the client side of the memcached text and meta
/// protocols.
///
/// Replies come back in the order the requests were sent, and the caller says what each one expects. Any request may
/// get `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …` as its whole reply, whatever it expects: that comes back as a
/// failed `.line`. A retrieval answered with some hits and then an error line (memcached does this for a bad key in
/// the middle of a multi-get) also comes back as that failed line, the hits before it consumed and dropped.
///
/// `decode` never consumes part of a reply: it returns nil and leaves the reader index where the reply starts. It
/// remembers how far it parsed a long multi-get or stats reply, so that feeding a big reply in small reads costs time
/// linear in its size; for that the caller hands the same buffer back, with more bytes appended, until the reply is
/// complete. Bytes that do not form a reply throw: the connection to the shard is then out of step and must close.
public struct MemcacheReplyDecoder {
    /// Longest line accepted, in bytes before its `\r\n`.
    public static let maximumLineLength = 8 * 1024

    /// Largest value accepted in a `VALUE` or `VA` block.
    public let maximumValueBytes: Int

    /// A reply parsed in part: where it starts and how far it was parsed.
    private struct Progress {
        var start = -1
        var expected = ExpectedReply.line
        /// Bytes of the reply already parsed into `values` or `stats`.
        var parsed = 0
        var values: [RetrievedValue] = []
        var stats: [(name: String, value: String)] = []
    }

    private var progress = Progress()

    public init(maximumValueBytes: Int = 64 * 1024 * 1024) {
        self.maximumValueBytes = maximumValueBytes
    }

    /// The next complete reply for a request that expects `expected`, consuming it; nil when more bytes are needed.
    public mutating func decode(
        _ buffer: inout ByteBuffer,
        expecting expected: ExpectedReply
    ) throws(ReplyDecodingError) -> ShardReply? {
        if progress.start != buffer.readerIndex || progress.expected != expected
            || progress.parsed > buffer.readableBytes
        {
            progress = Progress(start: buffer.readerIndex, expected: expected)
        }
        let decoded: (reply: ShardReply, length: Int)?
        do throws(ReplyDecodingError) {
            switch expected {
            case .retrievalOfOne: decoded = try decodeRetrievalOfOne(buffer)
            case .retrieval, .stats: decoded = try decodeList(buffer, expected: expected)
            case .line, .version, .meta: decoded = try decodeSingle(buffer, expected: expected)
            }
        } catch {
            progress = Progress()
            throw error
        }
        guard let decoded else { return nil }
        buffer.moveReaderIndex(forwardBy: decoded.length)
        progress = Progress()
        return decoded.reply
    }

    /// A reply of one line, or of one meta line and its data.
    private func decodeSingle(
        _ buffer: ByteBuffer,
        expected: ExpectedReply
    ) throws(ReplyDecodingError) -> (reply: ShardReply, length: Int)? {
        guard let line = try Self.line(in: buffer, at: 0) else { return nil }
        switch (try parse(line, in: buffer), expected) {
        case (.status(let status), .line):
            return (.line(LineReply(status: status, raw: line.slice(of: buffer))), line.next)
        case (.status(let status), _) where status.isFailure || (status == .version && expected == .version):
            return (.line(LineReply(status: status, raw: line.slice(of: buffer))), line.next)
        case (.meta(let code, let size, let flags), .meta):
            let tokens = flags.map { buffer.getSlice(at: buffer.readerIndex + $0.lowerBound, length: $0.count)! }
            guard let size else {
                return (.meta(MetaReply(code: code, raw: line.slice(of: buffer), data: nil, flags: tokens)), line.next)
            }
            guard let data = try Self.dataBlock(in: buffer, at: line.next, length: size, after: "VA") else {
                return nil
            }
            let length = line.next + size + 2
            let raw = buffer.getSlice(at: buffer.readerIndex, length: length)!
            return (.meta(MetaReply(code: code, raw: raw, data: data, flags: tokens)), length)
        default:
            throw Self.unexpected(line, in: buffer, expected: expected)
        }
    }

    /// A one-key retrieval: `END`, or a `VALUE` block and `END`, without building a list. Anything
    /// else (an error line, or more than one block) is left to `decodeList`.
    private mutating func decodeRetrievalOfOne(
        _ buffer: ByteBuffer
    ) throws(ReplyDecodingError) -> (reply: ShardReply, length: Int)? {
        guard progress.parsed == 0, let line = try Self.line(in: buffer, at: 0) else {
            return try decodeList(buffer, expected: .retrieval)
        }
        switch try parse(line, in: buffer) {
        case .end:
            return (.values([]), line.next)
        case .value(let key, let flags, let length, let cas):
            guard let data = try Self.dataBlock(in: buffer, at: line.next, length: length, after: "VALUE") else {
                return nil
            }
            let end = line.next + length + 2
            guard let next = try Self.line(in: buffer, at: end) else { return nil }
            guard case .end = try parse(next, in: buffer) else { return try decodeList(buffer, expected: .retrieval) }
            let value = Self.value(in: buffer, line: line, key: key, flags: flags, cas: cas, data: data, end: end)
            return (.value(value), next.next)
        default:
            return try decodeList(buffer, expected: .retrieval)
        }
    }

    /// The hit of the `VALUE` line `line`, whose data block ends (after its `\r\n`) at `end`.
    private static func value(
        in buffer: ByteBuffer,
        line: Line,
        key: Range<Int>,
        flags: UInt32,
        cas: UInt64?,
        data: ByteBuffer,
        end: Int
    ) -> RetrievedValue {
        let base = buffer.readerIndex
        return RetrievedValue(
            key: buffer.getSlice(at: base + key.lowerBound, length: key.count)!,
            flags: flags,
            cas: cas,
            data: data,
            raw: buffer.getSlice(at: base + line.start, length: end - line.start)!
        )
    }

    /// A retrieval or stats reply: items up to `END`.
    private mutating func decodeList(
        _ buffer: ByteBuffer,
        expected: ExpectedReply
    ) throws(ReplyDecodingError) -> (reply: ShardReply, length: Int)? {
        while true {
            guard let line = try Self.line(in: buffer, at: progress.parsed) else { return nil }
            switch (try parse(line, in: buffer), expected) {
            case (.end, .retrieval):
                return (.values(progress.values), line.next)
            case (.end, .stats):
                return (.stats(progress.stats), line.next)
            case (.value(let key, let flags, let length, let cas), .retrieval):
                guard let data = try Self.dataBlock(in: buffer, at: line.next, length: length, after: "VALUE") else {
                    return nil
                }
                let end = line.next + length + 2
                progress.values.append(
                    Self.value(in: buffer, line: line, key: key, flags: flags, cas: cas, data: data, end: end)
                )
                progress.parsed = end
            case (.stat(let name, let value), .stats):
                progress.stats.append((name: name, value: value))
                progress.parsed = line.next
            case (.status(let status), _) where status.isFailure:
                return (.line(LineReply(status: status, raw: line.slice(of: buffer))), line.next)
            default:
                throw Self.unexpected(line, in: buffer, expected: expected)
            }
        }
    }
}

// MARK: Lines

extension MemcacheReplyDecoder {
    /// One line of a reply, as offsets from the reader index: `start..<end` is its content, without `\r\n`, and
    /// `next` is where the next line or data block starts.
    struct Line {
        var start: Int
        var end: Int
        var next: Int

        func slice(of buffer: ByteBuffer) -> ByteBuffer {
            buffer.getSlice(at: buffer.readerIndex + start, length: next - start)!
        }
    }

    /// The line that starts `offset` bytes after the reader index; nil when its `\n` has not arrived yet.
    static func line(in buffer: ByteBuffer, at offset: Int) throws(ReplyDecodingError) -> Line? {
        enum Scan {
            case found(Int)
            case incomplete
            case tooLong
            case noCarriageReturn
        }
        let scan = buffer.withUnsafeReadableBytes { bytes -> Scan in
            // A line has at most `maximumLineLength` bytes and its `\r\n`: search no further.
            let window = offset..<max(offset, min(bytes.count, offset + maximumLineLength + 2))
            guard let newline = ByteScan.firstIndex(of: UInt8(ascii: "\n"), in: bytes, window) else {
                return window.count == maximumLineLength + 2 ? .tooLong : .incomplete
            }
            guard newline > offset, bytes[newline - 1] == UInt8(ascii: "\r") else { return .noCarriageReturn }
            return .found(newline)
        }
        switch scan {
        case .found(let newline):
            return Line(start: offset, end: newline - 1, next: newline + 1)
        case .incomplete:
            return nil
        case .tooLong:
            throw ReplyDecodingError(
                code: .lineTooLong,
                message: "a reply line is longer than \(maximumLineLength) bytes"
            )
        case .noCarriageReturn:
            throw ReplyDecodingError(code: .malformedLine, message: "a reply line ends in \\n without \\r")
        }
    }

    /// The `length` bytes at `offset` and their `\r\n`; nil until all have arrived.
    static func dataBlock(
        in buffer: ByteBuffer,
        at offset: Int,
        length: Int,
        after header: String
    ) throws(ReplyDecodingError) -> ByteBuffer? {
        guard buffer.readableBytes >= offset + length + 2 else { return nil }
        let terminator = buffer.getInteger(at: buffer.readerIndex + offset + length, as: UInt16.self)
        guard terminator == 0x0D0A else {
            throw ReplyDecodingError(
                code: .badDataTerminator,
                message: "the \(length) data bytes after a \(header) line are not followed by \\r\\n"
            )
        }
        return buffer.getSlice(at: buffer.readerIndex + offset, length: length)
    }

    static func unexpected(_ line: Line, in buffer: ByteBuffer, expected: ExpectedReply) -> ReplyDecodingError {
        // Name the line by its first word only: the rest may carry keys or values.
        let word = buffer.withUnsafeReadableBytes { bytes in
            let content = bytes[line.start..<line.end]
            let first = content.prefix { $0 != UInt8(ascii: " ") }
            let escaped = first.prefix(16).map { byte in
                (0x21...0x7E).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
            }
            return escaped.joined() + (first.count > 16 ? "…" : "")
        }
        return ReplyDecodingError(
            code: .unexpectedLine,
            message: "unexpected reply line \"\(word)\" where \(expected.replyName) was expected"
        )
    }
}

extension ExpectedReply {
    /// What the reply looks like, for error messages.
    var replyName: String {
        switch self {
        case .retrieval, .retrievalOfOne: "VALUE…END"
        case .line: "a status line"
        case .meta: "a meta reply"
        case .stats: "STAT…END"
        case .version: "VERSION"
        }
    }
}

// MARK: Parsing

extension MemcacheReplyDecoder {
    /// What one line of a reply is, with offsets from the reader index.
    enum ParsedLine {
        case end
        /// `VALUE <key> <flags> <bytes>[ <cas>]`.
        case value(key: Range<Int>, flags: UInt32, length: Int, cas: UInt64?)
        case stat(name: String, value: String)
        case status(LineReply.Status)
        /// A meta reply line; `size` is the data length of `VA`, nil for the other codes.
        case meta(code: String, size: Int?, flags: [Range<Int>])
        case unknown
    }

    typealias Bytes = Slice<UnsafeRawBufferPointer>

    func parse(_ line: Line, in buffer: ByteBuffer) throws(ReplyDecodingError) -> ParsedLine {
        try buffer.withUnsafeReadableBytes { parse(content: $0[line.start..<line.end]) }.get()
    }

    private func parse(content: Bytes) -> Result<ParsedLine, ReplyDecodingError> {
        if Self.equals(content, "END") { return .success(.end) }
        if Self.hasPrefix(content, "VALUE ") { return parseValue(content[(content.startIndex + 6)...]) }
        if Self.hasPrefix(content, "STAT ") { return Self.parseStat(content[(content.startIndex + 5)...]) }
        if Self.hasPrefix(content, "ITEM ") {
            let rest = content[(content.startIndex + 5)...]
            return .success(.stat(name: "ITEM", value: String(decoding: rest, as: UTF8.self)))
        }
        if Self.hasPrefix(content, "PREFIX ") {
            // `stats detail dump`: `PREFIX <prefix> get N hit N set N del N`.
            let rest = content[(content.startIndex + 7)...]
            return .success(.stat(name: "PREFIX", value: String(decoding: rest, as: UTF8.self)))
        }
        if let status = Self.status(content) { return .success(.status(status)) }
        return parseMeta(content)
    }

    private func parseValue(_ rest: Bytes) -> Result<ParsedLine, ReplyDecodingError> {
        // The fields between single spaces (an empty one between two spaces), without an array:
        // this runs for every hit.
        var fields = (0..<0, 0..<0, 0..<0, 0..<0)
        var count = 0
        var start = rest.startIndex
        while count <= 4 {
            let end =
                ByteScan.firstIndex(of: UInt8(ascii: " "), in: rest.base, start..<rest.endIndex) ?? rest.endIndex
            switch count {
            case 0: fields.0 = start..<end
            case 1: fields.1 = start..<end
            case 2: fields.2 = start..<end
            case 3: fields.3 = start..<end
            default: break
            }
            count += 1
            if end == rest.endIndex { break }
            start = end + 1
        }
        guard count == 3 || count == 4, !fields.0.isEmpty,
            let flags = Self.decimal(rest[fields.1]).flatMap(UInt32.init(exactly:)),
            let length = Self.decimal(rest[fields.2]),
            count == 3 || Self.decimal(rest[fields.3]) != nil
        else {
            return .failure(
                ReplyDecodingError(
                    code: .malformedLine,
                    message: "a VALUE line does not read VALUE <key> <flags> <bytes> [<cas>]"
                )
            )
        }
        if let failure = tooLarge(length, after: "VALUE") { return .failure(failure) }
        let cas = count == 4 ? Self.decimal(rest[fields.3]) : nil
        return .success(.value(key: fields.0, flags: flags, length: Int(length), cas: cas))
    }

    private static func parseStat(_ rest: Bytes) -> Result<ParsedLine, ReplyDecodingError> {
        let name: Bytes = rest.prefix { $0 != UInt8(ascii: " ") }
        guard !name.isEmpty else {
            return .failure(ReplyDecodingError(code: .malformedLine, message: "a STAT line has no name"))
        }
        let value: Bytes = rest[name.endIndex...].dropFirst()
        return .success(
            .stat(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        )
    }

    private func parseMeta(_ content: Bytes) -> Result<ParsedLine, ReplyDecodingError> {
        let start = content.startIndex
        guard content.count >= 2, content.count == 2 || content[start + 2] == UInt8(ascii: " "),
            let code = Self.metaCode(content[start], content[start + 1])
        else { return .success(.unknown) }
        // Typed, so that the indices stay those of the reply (Sequence's split would count from 0).
        let rest: Bytes = content.dropFirst(2)
        let words: [Bytes] = rest.split(separator: UInt8(ascii: " "))
        var tokens = words.map { $0.startIndex..<$0.endIndex }
        guard code == "VA" else { return .success(.meta(code: code, size: nil, flags: tokens)) }
        guard let first = tokens.first, let size = Self.decimal(content[first]) else {
            return .failure(ReplyDecodingError(code: .malformedLine, message: "a VA line has no valid size"))
        }
        if let failure = tooLarge(size, after: "VA") { return .failure(failure) }
        tokens.removeFirst()
        return .success(.meta(code: code, size: Int(size), flags: tokens))
    }

    private func tooLarge(_ length: UInt64, after header: String) -> ReplyDecodingError? {
        guard length > UInt64(maximumValueBytes) else { return nil }
        return ReplyDecodingError(
            code: .valueTooLarge,
            message: "a \(header) of \(length) bytes is larger than the limit of \(maximumValueBytes) bytes"
        )
    }

    private static func metaCode(_ first: UInt8, _ second: UInt8) -> String? {
        switch (first, second) {
        case (UInt8(ascii: "V"), UInt8(ascii: "A")): "VA"
        case (UInt8(ascii: "H"), UInt8(ascii: "D")): "HD"
        case (UInt8(ascii: "E"), UInt8(ascii: "N")): "EN"
        case (UInt8(ascii: "N"), UInt8(ascii: "F")): "NF"
        case (UInt8(ascii: "N"), UInt8(ascii: "S")): "NS"
        case (UInt8(ascii: "E"), UInt8(ascii: "X")): "EX"
        case (UInt8(ascii: "M"), UInt8(ascii: "N")): "MN"
        case (UInt8(ascii: "M"), UInt8(ascii: "E")): "ME"
        default: nil
        }
    }

    /// The status of a line of the text protocol, or nil.
    private static func status(_ content: Bytes) -> LineReply.Status? {
        if let first = content.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") {
            return decimal(content).map { .number($0) }
        }
        if equals(content, "STORED") { return .stored }
        if equals(content, "NOT_STORED") { return .notStored }
        if equals(content, "EXISTS") { return .exists }
        if equals(content, "NOT_FOUND") { return .notFound }
        if equals(content, "DELETED") { return .deleted }
        if equals(content, "TOUCHED") { return .touched }
        if equals(content, "OK") { return .ok }
        if equals(content, "RESET") { return .reset }
        if hasPrefix(content, "VERSION ") { return .version }
        // memcached also answers `ERROR: shutdown not enabled`.
        if equals(content, "ERROR") || hasPrefix(content, "ERROR ") || hasPrefix(content, "ERROR:") { return .error }
        if equals(content, "CLIENT_ERROR") || hasPrefix(content, "CLIENT_ERROR ") { return .clientError }
        if equals(content, "SERVER_ERROR") || hasPrefix(content, "SERVER_ERROR ") { return .serverError }
        return nil
    }

    /// A plain decimal that fits in 64 bits: digits only, as memcached prints them.
    private static func decimal(_ bytes: Bytes) -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte &- UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    private static func equals(_ bytes: Bytes, _ literal: StaticString) -> Bool {
        ByteScan.equals(bytes.base, bytes.startIndex..<bytes.endIndex, literal)
    }

    private static func hasPrefix(_ bytes: Bytes, _ literal: StaticString) -> Bool {
        ByteScan.hasPrefix(bytes.base, bytes.startIndex..<bytes.endIndex, literal)
    }
}

/// A shard sent bytes that are not the reply the request expects: the connection is out of step
/// and must close. `message` says what was wrong, without keys or values.
public typealias ReplyDecodingError = CodedError<ReplyDecodingErrorCode>

/// The kinds of `ReplyDecodingError`.
public enum ReplyDecodingErrorCode: String, ErrorCode {
    /// More than `MemcacheReplyDecoder.maximumLineLength` bytes without a `\n`.
    case lineTooLong = "line-too-long"
    /// A line that starts like a known reply but does not parse (bad numbers, missing fields, no `\r`).
    case malformedLine = "malformed-line"
    /// A line that is not a reply to the request (an unknown line, or `STORED` where `VALUE…END` belongs).
    case unexpectedLine = "unexpected-line"
    /// A data block not followed by `\r\n`.
    case badDataTerminator = "bad-data-terminator"
    /// A value larger than the decoder's `maximumValueBytes`.
    case valueTooLarge = "value-too-large"

    public static func describe(text: String, message: String) -> String {
        "bad reply from shard: \(message)"
    }
}
