import FlotillaCore

/// A parsed bench target: `memcache://HOST:PORT` or `http://HOST:PORT/PATH`.
///
/// An HTTP path may hold `{key}` placeholders, replaced per request by the key chosen from the distribution.
public struct BenchTarget: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case memcache
        case http
    }

    public var kind: Kind
    /// The host name or address, without brackets for IPv6.
    public var host: String
    /// Memcache default 11211, HTTP default 80.
    public var port: Int
    /// HTTP only: the request target (path and query) split on every `{key}` placeholder, so that the path for
    /// key K is `pathParts.joined(separator: K)`. `["/"]` when the URL has no path. Memcache: `[]`.
    public var pathParts: [String]
    /// The Host header value: `host`, or `host:port` when the port is not 80; IPv6 in brackets.
    public var hostHeader: String

    /// The placeholder an HTTP path may contain.
    public static let keyPlaceholder = "{key}"

    public init(parsing text: String) throws(BenchInputError) {
        let url = text.trimmingTargetWhitespace
        guard let schemeEnd = url.firstRange(of: "://") else {
            throw BenchInputError(
                "invalid target '\(text)': no scheme; expected memcache://HOST:PORT or http://HOST:PORT/PATH"
            )
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        switch scheme {
        case "memcache", "memcached":
            kind = .memcache
        case "http":
            kind = .http
        case "https":
            throw BenchInputError(
                "invalid target '\(text)': TLS is not supported; point bench at a plain-HTTP listener "
                    + "(http://HOST:PORT/PATH)"
            )
        default:
            throw BenchInputError(
                "invalid target '\(text)': unknown scheme '\(scheme)'; expected memcache://HOST:PORT or "
                    + "http://HOST:PORT/PATH"
            )
        }

        let rest = url[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") {
            throw BenchInputError(
                "invalid target '\(text)': fragment '\(rest[hash...])' is not allowed; remove it"
            )
        }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let path = rest[authorityEnd...]
        if authority.contains("@") {
            throw BenchInputError(
                "invalid target '\(text)': user information '\(authority[..<authority.lastIndex(of: "@")!])@' "
                    + "is not supported; expected HOST:PORT"
            )
        }

        let defaultPort = kind == .memcache ? 11211 : 80
        (host, port) = try Self.parseAuthority(authority, defaultPort: defaultPort, text: text)

        switch kind {
        case .memcache:
            guard path.isEmpty || path == "/" else {
                throw BenchInputError(
                    "invalid target '\(text)': a memcache target has no path, found '\(path)'; "
                        + "expected memcache://HOST:PORT"
                )
            }
            pathParts = []
        case .http:
            if let bad = path.first(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } == true })
            {
                throw BenchInputError(
                    "invalid target '\(text)': the path contains \(bad == " " ? "a space" : "a control character"); "
                        + "percent-encode it"
                )
            }
            let requestTarget = path.isEmpty ? "/" : path.hasPrefix("?") ? "/" + path : String(path)
            pathParts = requestTarget.split(on: Self.keyPlaceholder)
        }
        let authorityText = HostPort(host: host, port: port).description
        hostHeader = port == 80 ? (host.contains(":") ? "[\(host)]" : host) : authorityText
    }

    /// Splits `HOST[:PORT]` or `[IPv6][:PORT]`.
    private static func parseAuthority(
        _ authority: Substring,
        defaultPort: Int,
        text: String
    ) throws(BenchInputError) -> (host: String, port: Int) {
        let host: Substring
        let portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw BenchInputError(
                    "invalid target '\(text)': '\(authority)' has no closing ']' for the IPv6 address"
                )
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.isEmpty {
                portText = nil
            } else if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else {
                throw BenchInputError(
                    "invalid target '\(text)': unexpected '\(after)' after ']'; expected [IPv6]:PORT"
                )
            }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." || $0 == "%" })
            else {
                throw BenchInputError(
                    "invalid target '\(text)': '[\(host)]' is not an IPv6 address; brackets are for IPv6 only"
                )
            }
        } else {
            let colons = authority.filter { $0 == ":" }.count
            if colons > 1 {
                throw BenchInputError(
                    "invalid target '\(text)': '\(authority)' has several ':'; write an IPv6 address in brackets, "
                        + "e.g. [::1]:11211"
                )
            }
            if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
                portText = nil
            }
            guard
                host.allSatisfy({
                    $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_")
                })
            else {
                throw BenchInputError(
                    "invalid target '\(text)': '\(host)' is not a host name or IPv4 address"
                )
            }
        }
        guard !host.isEmpty else {
            throw BenchInputError("invalid target '\(text)': the host is empty; expected HOST:PORT")
        }
        guard let portText else { return (String(host), defaultPort) }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = Int(portText), (1...65535).contains(port)
        else {
            throw BenchInputError("invalid target '\(text)': port '\(portText)' is not a number from 1 to 65535")
        }
        return (String(host), port)
    }

    /// The canonical URL, always with the port: `memcache://127.0.0.1:11211`, `http://[::1]:8080/item/{key}`.
    public var description: String {
        let authority = HostPort(host: host, port: port).description
        switch kind {
        case .memcache: return "memcache://\(authority)"
        case .http: return "http://\(authority)\(pathParts.joined(separator: Self.keyPlaceholder))"
        }
    }

    /// The HTTP request target for `key`: every `{key}` replaced by it.
    public func requestTarget(forKey key: String) -> String {
        pathParts.joined(separator: key)
    }
}

extension String {
    fileprivate var trimmingTargetWhitespace: String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view = view.dropFirst() }
        while let last = view.last, last.isWhitespace { view = view.dropLast() }
        return String(view)
    }

    /// Splits on every occurrence of `separator`, keeping empty pieces: "a{k}" → ["a", ""].
    fileprivate func split(on separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
