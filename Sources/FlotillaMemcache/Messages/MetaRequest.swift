import NIOCore

/// A meta-protocol command (`mg`, `ms`, `md`, `ma`, `mn`, `me`) with its flags.
public struct MetaRequest: Equatable {
    public enum Command: Sendable { case get, set, delete, arithmetic, noop, debug }

    public var command: Command
    /// The key, base64-decoded when the `b` flag was given.
    public var key: ByteBuffer
    public var flags: MetaFlags
    /// The flags in the order they were sent; replies echo them in that order.
    public var tokens: [MetaToken]
    /// The value of `ms`.
    public var data: ByteBuffer?

    public var operation: MemcacheOperation { command.operation }
}

extension MetaRequest.Command {
    public var operation: MemcacheOperation {
        switch self {
        case .get: .metaGet
        case .set: .metaSet
        case .delete: .metaDelete
        case .arithmetic: .metaArithmetic
        case .noop: .metaNoop
        case .debug: .metaDebug
        }
    }
}

/// One flag of a meta command: its letter and the token that follows it (`O123` → `O`, `123`).
public struct MetaToken: Equatable {
    public var flag: UInt8
    /// The whole token, flag letter included.
    public var token: ByteBuffer
}

/// The meta flags, parsed as memcached's `_meta_flag_preparse` does.
public struct MetaFlags: Sendable, Equatable {
    public var keyIsBinary = false
    public var noReply = false
    public var noUpdate = false
    public var returnValue = false
    /// `N`: create the item on a miss, with this expiry.
    public var vivifyExptime: Int32?
    /// `T`: the new expiry.
    public var newExptime: Int32?
    /// `R`: win the recache token when the remaining TTL is below this.
    public var recacheExptime: Int32?
    public var clientFlags: UInt32 = 0
    /// `C`: compare-and-swap unique.
    public var compareCAS: UInt64?
    /// `h`, `l`, `N`, `T` or `R` was given: memcached then reads the item's state before it
    /// bumps it, and bumps after answering.
    public var reportsOrChangesState = false
    /// `I`: invalidate (md) or allow a stale write (ms).
    public var invalidate = false
    /// `M`: the mode letter.
    public var mode: UInt8?
    /// `D`: arithmetic delta (default 1).
    public var delta: UInt64 = 1
    /// `J`: initial value of an arithmetic auto-create (default 0).
    public var initial: UInt64 = 0

    public init() {}
}
