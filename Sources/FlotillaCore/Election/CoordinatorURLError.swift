/// A `--coordinator` value that cannot be used: `code` says what kind of mistake, `text` is the offending part of
/// the input, `message` says what was wrong; `description` adds valid examples.
public struct CoordinatorURLError: Error, Hashable, CustomStringConvertible {
    /// The kind of mistake; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case empty
            case unknownScheme = "unknown-scheme"
            case emptyPath = "empty-path"
            case emptyEndpointList = "empty-endpoint-list"
            case emptyEndpoint = "empty-endpoint"
            case invalidHost = "invalid-host"
            case missingPort = "missing-port"
            case invalidPort = "invalid-port"
            case duplicateEndpoint = "duplicate-endpoint"
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// Nothing at all (or only spaces).
        public static let empty = Code(.empty)
        /// A scheme other than `file:` and `etcd://`, or none.
        public static let unknownScheme = Code(.unknownScheme)
        /// `file:` without a path.
        public static let emptyPath = Code(.emptyPath)
        /// `etcd://` without an endpoint, or `etcd:` without `//`.
        public static let emptyEndpointList = Code(.emptyEndpointList)
        /// An empty entry between commas.
        public static let emptyEndpoint = Code(.emptyEndpoint)
        /// An empty host, an IPv6 address without brackets, or characters no host name has.
        public static let invalidHost = Code(.invalidHost)
        /// `HOST` without `:PORT`.
        public static let missingPort = Code(.missingPort)
        /// A port that is not a number in 1…65535.
        public static let invalidPort = Code(.invalidPort)
        /// The same `HOST:PORT` twice in one list.
        public static let duplicateEndpoint = Code(.duplicateEndpoint)

        /// A short, bounded label fit for a metric dimension or a log field (`invalid-port`).
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The part of the input the message is about (one endpoint, or the whole value).
    public var text: String
    public var message: String

    public init(code: Code, text: String, message: String) {
        self.code = code
        self.text = text
        self.message = message
    }

    /// A short, bounded label fit for a metric dimension (`invalid-port`).
    public var shortDescription: String { code.description }

    public var description: String {
        "invalid coordinator \"\(text)\": \(message) (e.g. \(CoordinatorURL.examples))"
    }
}
