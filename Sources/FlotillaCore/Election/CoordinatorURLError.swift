/// A `--coordinator` value that cannot be used; `text` is the offending endpoint or the whole
/// value, and the description adds valid examples.
public typealias CoordinatorURLError = CodedError<CoordinatorURLErrorCode>

/// The kinds of `CoordinatorURLError`.
public enum CoordinatorURLErrorCode: String, ErrorCode {
    /// Nothing at all (or only spaces).
    case empty
    /// A scheme other than `file:` and `etcd://`, or none.
    case unknownScheme = "unknown-scheme"
    /// `file:` without a path.
    case emptyPath = "empty-path"
    /// `etcd://` without an endpoint, or `etcd:` without `//`.
    case emptyEndpointList = "empty-endpoint-list"
    /// An empty entry between commas.
    case emptyEndpoint = "empty-endpoint"
    /// An empty host, an IPv6 address without brackets, or characters no host name has.
    case invalidHost = "invalid-host"
    /// `HOST` without `:PORT`.
    case missingPort = "missing-port"
    /// A port that is not a number in 1…65535.
    case invalidPort = "invalid-port"
    /// The same `HOST:PORT` twice in one list.
    case duplicateEndpoint = "duplicate-endpoint"

    public static func describe(text: String, message: String) -> String {
        "invalid coordinator \"\(text)\": \(message) (e.g. \(CoordinatorURL.examples))"
    }
}
