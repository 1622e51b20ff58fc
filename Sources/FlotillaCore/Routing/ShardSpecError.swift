/// A `--shards` value that cannot be used; `text` is the offending entry or the whole list.
public typealias ShardSpecError = CodedError<ShardSpecErrorCode>

/// The kinds of `ShardSpecError`.
public enum ShardSpecErrorCode: String, ErrorCode {
    /// No shard at all.
    case emptyList = "empty-list"
    /// An empty entry between commas.
    case emptyEntry = "empty-entry"
    /// An empty host, or an IPv6 address without brackets.
    case invalidHost = "invalid-host"
    /// `HOST` without `:PORT`.
    case missingPort = "missing-port"
    /// A port that is not a number in 1…65535.
    case invalidPort = "invalid-port"
    /// A weight that is not a whole number in `ShardSpec.weightRange`.
    case invalidWeight = "invalid-weight"
    /// The same `HOST:PORT` twice in one list.
    case duplicateShard = "duplicate-shard"

    public static func describe(text: String, message: String) -> String {
        "invalid shard \"\(text)\": \(message)"
    }
}
