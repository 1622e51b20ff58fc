/// Where `flotilla elect` keeps its election: the value of `--coordinator`.
///
/// - `file:PATH`: a lock file on this host (PATH absolute or relative, e.g. `file:/run/flotilla/web.lock`).
/// - `etcd://HOST:PORT[,HOST:PORT…]`: one etcd cluster, through any of the listed client endpoints
///   (e.g. `etcd://10.0.0.1:2379,10.0.0.2:2379`); an IPv6 host goes in brackets (`[::1]:2379`).
public enum CoordinatorURL: Sendable, Hashable, CustomStringConvertible {
    case file(path: String)
    case etcd(endpoints: [HostPort])

    /// Valid forms, quoted by every error message.
    static let examples = "file:/run/flotilla/web.lock or etcd://127.0.0.1:2379,127.0.0.2:2379"

    /// Parses a `--coordinator` value; surrounding spaces are ignored, and so is the case of the scheme.
    public init(parsing text: String) throws(CoordinatorURLError) {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else {
            throw CoordinatorURLError(code: .empty, text: text, message: "the coordinator is empty")
        }
        guard let colon = trimmed.firstIndex(of: ":") else {
            throw CoordinatorURLError(
                code: .unknownScheme,
                text: trimmed,
                message: "no scheme: write file:PATH or etcd://HOST:PORT"
            )
        }
        let scheme = trimmed[..<colon].lowercased()
        let rest = String(trimmed[trimmed.index(after: colon)...])
        switch scheme {
        case "file":
            guard !rest.isEmpty else {
                throw CoordinatorURLError(
                    code: .emptyPath,
                    text: trimmed,
                    message: "file: needs a path after the colon"
                )
            }
            self = .file(path: rest)
        case "etcd":
            self = .etcd(endpoints: try Self.parseEndpoints(rest, whole: trimmed))
        default:
            throw CoordinatorURLError(
                code: .unknownScheme,
                text: trimmed,
                message: "unknown scheme \"\(scheme)\": the coordinator is file:PATH or etcd://HOST:PORT"
            )
        }
    }

    /// The canonical text, which parses back to the same value: `file:PATH`, `etcd://HOST:PORT,…`.
    public var description: String {
        switch self {
        case .file(let path): "file:\(path)"
        case .etcd(let endpoints): "etcd://" + endpoints.map(\.description).joined(separator: ",")
        }
    }

    private static func parseEndpoints(_ rest: String, whole: String) throws(CoordinatorURLError) -> [HostPort] {
        guard rest.hasPrefix("//") else {
            throw CoordinatorURLError(
                code: .emptyEndpointList,
                text: whole,
                message: "etcd needs \"//\" before its endpoints: etcd://HOST:PORT"
            )
        }
        let list = rest.dropFirst(2)
        guard !String(list).trimmingSpaces.isEmpty else {
            throw CoordinatorURLError(
                code: .emptyEndpointList,
                text: whole,
                message: "etcd:// lists no endpoint: write etcd://HOST:PORT"
            )
        }
        var endpoints: [HostPort] = []
        for entry in list.split(separator: ",", omittingEmptySubsequences: false) {
            let endpoint = try parseEndpoint(String(entry).trimmingSpaces)
            guard !endpoints.contains(endpoint) else {
                throw CoordinatorURLError(
                    code: .duplicateEndpoint,
                    text: endpoint.description,
                    message: "endpoint \(endpoint) is listed twice"
                )
            }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    /// One `HOST:PORT`: says which part is wrong before `HostPort(parsing:)` builds it.
    private static func parseEndpoint(_ entry: String) throws(CoordinatorURLError) -> HostPort {
        guard !entry.isEmpty else {
            throw CoordinatorURLError(
                code: .emptyEndpoint,
                text: entry,
                message: "empty endpoint between commas"
            )
        }
        // The host ends at the bracket of an IPv6 address, else at the last colon.
        let hostEnd: String.Index?
        if entry.hasPrefix("[") {
            guard let bracket = entry.firstIndex(of: "]") else {
                throw CoordinatorURLError(code: .invalidHost, text: entry, message: "\"[\" without its \"]\"")
            }
            hostEnd = entry.index(after: bracket)
        } else {
            hostEnd = entry.lastIndex(of: ":")
        }
        guard let hostEnd, hostEnd < entry.endIndex, entry[hostEnd] == ":" else {
            throw CoordinatorURLError(code: .missingPort, text: entry, message: "no port: write HOST:PORT")
        }
        let host = entry[..<hostEnd]
        let port = entry[entry.index(after: hostEnd)...]
        let bareHost = host.hasPrefix("[") ? host.dropFirst().dropLast() : host
        guard !bareHost.isEmpty else {
            throw CoordinatorURLError(code: .invalidHost, text: entry, message: "empty host")
        }
        guard host.hasPrefix("[") || !host.contains(":") else {
            throw CoordinatorURLError(
                code: .invalidHost,
                text: entry,
                message: "an IPv6 host goes in brackets: [\(host)]:\(port)"
            )
        }
        guard !bareHost.contains(where: { " \t/?#@[]".contains($0) }) else {
            throw CoordinatorURLError(
                code: .invalidHost,
                text: entry,
                message: "host \"\(bareHost)\" is not a host name"
            )
        }
        guard !port.isEmpty else {
            throw CoordinatorURLError(code: .missingPort, text: entry, message: "no port after the colon")
        }
        guard port.allSatisfy(\.isASCIIDigit), let number = Int(port), (1...65535).contains(number),
            let endpoint = HostPort(parsing: entry)
        else {
            throw CoordinatorURLError(
                code: .invalidPort,
                text: entry,
                message: "port \"\(port)\" is not a number from 1 to 65535"
            )
        }
        return endpoint
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
