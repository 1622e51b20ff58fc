/// A `--shards` value that cannot be used: `code` says what kind of mistake, `text` is the offending part of the
/// input, `message` says what was wrong and how to write it.
public struct ShardSpecError: Error, Hashable, CustomStringConvertible {
    /// The kind of mistake; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case emptyList = "empty-list"
            case emptyEntry = "empty-entry"
            case invalidHost = "invalid-host"
            case missingPort = "missing-port"
            case invalidPort = "invalid-port"
            case invalidWeight = "invalid-weight"
            case duplicateShard = "duplicate-shard"
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// No shard at all.
        public static let emptyList = Code(.emptyList)
        /// An empty entry between commas.
        public static let emptyEntry = Code(.emptyEntry)
        /// An empty host, or an IPv6 address without brackets.
        public static let invalidHost = Code(.invalidHost)
        /// `HOST` without `:PORT`.
        public static let missingPort = Code(.missingPort)
        /// A port that is not a number in 1…65535.
        public static let invalidPort = Code(.invalidPort)
        /// A weight that is not a whole number in `ShardSpec.weightRange`.
        public static let invalidWeight = Code(.invalidWeight)
        /// The same `HOST:PORT` twice in one list.
        public static let duplicateShard = Code(.duplicateShard)

        /// A short, bounded label fit for a metric dimension or a log field (`invalid-port`).
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The part of the input the message is about (one entry, or the whole list).
    public var text: String
    public var message: String

    public init(code: Code, text: String, message: String) {
        self.code = code
        self.text = text
        self.message = message
    }

    /// A short, bounded label fit for a metric dimension (`invalid-port`).
    public var shortDescription: String { code.description }

    public var description: String { "invalid shard \"\(text)\": \(message)" }
}
