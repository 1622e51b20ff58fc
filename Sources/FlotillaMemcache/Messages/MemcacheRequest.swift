import NIOCore

/// One decoded request of the memcached text or meta protocol.
///
/// Keys and data are slices of the connection's read buffer: they are valid until the next
/// bytes are appended to it, so a consumer copies what it keeps.
public enum MemcacheRequest: Equatable {
    case retrieval(RetrievalRequest)
    case storage(StorageRequest)
    case delete(key: ByteBuffer, noreply: Bool)
    case arithmetic(ArithmeticRequest)
    case touch(key: ByteBuffer, exptime: Int32, noreply: Bool)
    /// `flush_all [delay]`; `delay` is nil when none was given.
    case flushAll(delay: Int32?, noreply: Bool)
    case version
    case verbosity(noreply: Bool)
    /// `stats` and its sub-commands; `arguments` is empty for the general statistics.
    case stats(arguments: [String])
    case quit
    /// `lru_crawler metadump all|hash|<classes>`: one line per live item, then `END`.
    case metadump(classes: SlabClasses)
    /// `lru_crawler crawl all|<classes>`: reclaims expired items now.
    case crawl(classes: SlabClasses)
    case meta(MetaRequest)
    /// A storage command whose value is larger than the item size limit: memcached answers
    /// `SERVER_ERROR object too large for cache`, skips the data and, for a plain set, drops the
    /// key's current value so that a stale value does not outlive the failed write.
    case tooLarge(operation: MemcacheOperation, key: ByteBuffer, noreply: Bool, dropsCurrentValue: Bool)
    /// An answer the decoder gives by itself (protocol errors).
    case reply(MemcacheImmediateReply)
    /// The protocol asks to hang up (an HTTP request, a line too long to be a command).
    case close(reason: CloseReason)
    /// A request of memcached's binary protocol (magic byte 0x80), which flotilla does not speak:
    /// answered with `binaryUnknownCommand(opcode:opaque:)`, then the connection closes.
    case binaryProtocol(opcode: UInt8, opaque: UInt32)

    public enum CloseReason: Sendable {
        case httpRequest
        case lineTooLong
    }
}

/// The slab classes an `lru_crawler` command names: `all` (or `hash`), or a comma-separated list
/// of class ids, each 1...63 as memcached accepts them.
public enum SlabClasses: Equatable, Sendable {
    case all
    case ids([Int])

    /// The largest class id memcached accepts.
    public static let largestClass = 63
}

/// An answer decided while decoding, such as `ERROR` or `CLIENT_ERROR bad data chunk`.
public struct MemcacheImmediateReply: Sendable {
    public var operation: MemcacheOperation
    public var message: StaticString
    /// True when the client asked for `noreply`: memcached then sends nothing, errors included.
    public var suppressed: Bool
    /// True for replies that report a fault (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`).
    public var isError: Bool

    public init(operation: MemcacheOperation, message: StaticString, suppressed: Bool = false, isError: Bool = true) {
        self.operation = operation
        self.message = message
        self.suppressed = suppressed
        self.isError = isError
    }
}

public struct RetrievalRequest: Equatable {
    public var operation: MemcacheOperation
    /// The new expiry of `gat`/`gats`, as sent.
    public var exptime: Int32
    public var keys: RetrievalKeys

    public var returnsCAS: Bool { operation == .gets || operation == .gats }
    public var touches: Bool { operation == .gat || operation == .gats }
}

/// The keys of a get/gets/gat/gats, in request order: one key held inline (most requests, and no
/// array to allocate and free for them), or several.
public struct RetrievalKeys: RandomAccessCollection, ExpressibleByArrayLiteral, Equatable {
    private enum Storage {
        case one(ByteBuffer)
        case many([ByteBuffer])
    }

    private let storage: Storage

    public init(_ keys: [ByteBuffer]) {
        storage = keys.count == 1 ? .one(keys[0]) : .many(keys)
    }

    public init(one key: ByteBuffer) {
        storage = .one(key)
    }

    public init(arrayLiteral keys: ByteBuffer...) {
        self.init(keys)
    }

    public var startIndex: Int { 0 }

    public var endIndex: Int {
        switch storage {
        case .one: 1
        case .many(let keys): keys.count
        }
    }

    public subscript(position: Int) -> ByteBuffer {
        switch storage {
        case .one(let key):
            precondition(position == 0, "key index \(position) out of range 0..<1")
            return key
        case .many(let keys):
            return keys[position]
        }
    }

    public static func == (lhs: RetrievalKeys, rhs: RetrievalKeys) -> Bool {
        lhs.elementsEqual(rhs)
    }
}

public struct StorageRequest: Equatable {
    public enum Mode: Sendable { case set, add, replace, append, prepend, cas }

    public var mode: Mode
    public var key: ByteBuffer
    public var flags: UInt32
    public var exptime: Int32
    /// The unique of `cas`; 0 for the other commands.
    public var casUnique: UInt64
    public var noreply: Bool
    public var data: ByteBuffer

    public var operation: MemcacheOperation { mode.operation }

    public init(
        mode: Mode,
        key: ByteBuffer,
        flags: UInt32,
        exptime: Int32,
        casUnique: UInt64,
        noreply: Bool,
        data: ByteBuffer
    ) {
        self.mode = mode
        self.key = key
        self.flags = flags
        self.exptime = exptime
        self.casUnique = casUnique
        self.noreply = noreply
        self.data = data
    }
}

extension StorageRequest.Mode {
    public var operation: MemcacheOperation {
        switch self {
        case .set: .set
        case .add: .add
        case .replace: .replace
        case .append: .append
        case .prepend: .prepend
        case .cas: .cas
        }
    }
}

public struct ArithmeticRequest: Equatable {
    public var increment: Bool
    public var key: ByteBuffer
    public var delta: UInt64
    public var noreply: Bool
}
