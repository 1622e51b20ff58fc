import NIOCore

/// One complete reply of a shard (memcached or `flotilla cache`) to one forwarded request.
///
/// Byte buffers are slices of the buffer the reply was decoded from; `raw` slices can be written to the proxy's
/// client unchanged.
public enum ShardReply: Sendable {
    /// `VALUE…END` of get/gets/gat/gats: each hit with its raw block, in the order the shard sent them. The `END`
    /// line belongs to no value: the proxy writes its own after merging.
    case values([RetrievedValue])
    /// The one hit of a one-key retrieval (`ExpectedReply.retrievalOfOne`); its miss is an empty `.values`.
    case value(RetrievedValue)
    /// One line: a storage, delete, touch or flush outcome, an incr/decr result, `VERSION x`, or an error. Every
    /// request, whatever it expects, can get an error line (`isFailure`) as its whole reply.
    case line(LineReply)
    /// One meta reply: `VA` with its data, `HD`, `EN`, `NF`, `NS`, `EX`, `MN`, `ME`.
    case meta(MetaReply)
    /// `STAT name value` lines up to `END`.
    case stats([(name: String, value: String)])

    /// True for an `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …` reply.
    public var isFailure: Bool {
        if case .line(let line) = self { return line.isFailure }
        return false
    }
}

/// One hit of a get/gets/gat/gats reply.
public struct RetrievedValue: Sendable {
    public var key: ByteBuffer
    public var flags: UInt32
    /// The CAS unique of gets/gats; nil for get/gat.
    public var cas: UInt64?
    public var data: ByteBuffer
    /// The `VALUE key flags bytes [cas]\r\n` line, the data and its `\r\n`, ready to forward.
    public var raw: ByteBuffer

    public init(key: ByteBuffer, flags: UInt32, cas: UInt64?, data: ByteBuffer, raw: ByteBuffer) {
        self.key = key
        self.flags = flags
        self.cas = cas
        self.data = data
        self.raw = raw
    }
}

/// A reply of one line.
public struct LineReply: Sendable {
    public enum Status: Sendable, Equatable {
        case stored, notStored, exists, notFound, deleted, touched, ok
        /// `stats reset`'s answer.
        case reset
        /// The new value after incr/decr.
        case number(UInt64)
        /// `VERSION x`.
        case version
        /// `ERROR` (an unknown command), or `ERROR: …`.
        case error
        case clientError, serverError
    }

    public var status: Status
    /// The whole line with its `\r\n`, forwardable as is.
    public var raw: ByteBuffer

    public init(status: Status, raw: ByteBuffer) {
        self.status = status
        self.raw = raw
    }

    /// True for `ERROR`, `CLIENT_ERROR …` and `SERVER_ERROR …`: a protocol or server fault, not a normal miss.
    public var isFailure: Bool { status.isFailure }
}

extension LineReply.Status {
    /// True for `ERROR`, `CLIENT_ERROR …` and `SERVER_ERROR …`.
    public var isFailure: Bool {
        switch self {
        case .error, .clientError, .serverError: true
        default: false
        }
    }
}

/// A reply of the meta protocol. Errors are not meta replies: they come as `ShardReply.line`.
public struct MetaReply: Sendable {
    /// The two-letter code: `VA`, `HD`, `EN`, `NF`, `NS`, `EX`, `MN` or `ME`.
    public var code: String
    /// The line, plus the data and its `\r\n` for `VA`, forwardable as is.
    public var raw: ByteBuffer
    /// The value of a `VA` reply; nil for the others.
    public var data: ByteBuffer?
    /// The tokens after the code, in order (after the size for `VA`): the return flags (`t30`, `c12`, `Oabc`), or
    /// for `ME` the key and its `name=value` fields.
    public var flags: [ByteBuffer]

    public init(code: String, raw: ByteBuffer, data: ByteBuffer?, flags: [ByteBuffer]) {
        self.code = code
        self.raw = raw
        self.data = data
        self.flags = flags
    }
}
