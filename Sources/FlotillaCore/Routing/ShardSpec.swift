/// One cache shard behind the proxy, written `HOST:PORT[:WEIGHT]` (`10.0.0.7:11211`, `cache-2:11211:3`,
/// `[::1]:11212`).
///
/// The weight sets the shard's share of the keys relative to the others (default 1). The host is kept as written,
/// not resolved: both distributions hash the text, so `localhost` and `127.0.0.1` are different shards to them.
public struct ShardSpec: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var weight: Int

    /// The weights a shard may have.
    public static let weightRange = 1...10_000

    /// A shard at `host:port` (an IPv6 host without brackets) with `weight` (default 1).
    public init(host: String, port: Int, weight: Int = 1) {
        self.host = host
        self.port = port
        self.weight = weight
    }

    /// Parses one `HOST:PORT[:WEIGHT]`; surrounding spaces are ignored. IPv6 hosts are written in brackets.
    public init(parsing text: some StringProtocol) throws(ShardSpecError) {
        let entry = Self.trimmed(text)
        guard !entry.isEmpty else {
            throw ShardSpecError(code: .emptyEntry, text: entry, message: "empty shard; write HOST:PORT[:WEIGHT]")
        }
        let host: Substring
        var fields: [Substring]
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else {
                throw ShardSpecError(code: .invalidHost, text: entry, message: "missing ']' after the IPv6 address")
            }
            host = entry[entry.index(after: entry.startIndex)..<close]
            let rest = entry[entry.index(after: close)...]
            guard let colon = rest.first, colon == ":" else {
                throw ShardSpecError(
                    code: rest.isEmpty ? .missingPort : .invalidHost,
                    text: entry,
                    message: rest.isEmpty ? "no port; write [IPV6]:PORT[:WEIGHT]" : "expected ':' after ']'"
                )
            }
            fields = rest.dropFirst().split(separator: ":", omittingEmptySubsequences: false)
        } else {
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count > 1 else {
                throw ShardSpecError(code: .missingPort, text: entry, message: "no port; write HOST:PORT[:WEIGHT]")
            }
            guard parts.count <= 3 else {
                throw ShardSpecError(
                    code: .invalidHost,
                    text: entry,
                    message: "too many ':'; write HOST:PORT[:WEIGHT], with an IPv6 address in brackets ([::1]:11211)"
                )
            }
            host = parts[0]
            fields = Array(parts.dropFirst())
        }
        guard !host.isEmpty else {
            throw ShardSpecError(code: .invalidHost, text: entry, message: "empty host; write HOST:PORT[:WEIGHT]")
        }
        guard !host.contains(where: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "[" || $0 == "]" }) else {
            throw ShardSpecError(
                code: .invalidHost,
                text: entry,
                message: "host \"\(host)\" has a space, comma or bracket"
            )
        }
        guard fields.count <= 2 else {
            throw ShardSpecError(
                code: .invalidWeight,
                text: entry,
                message: "unexpected \":\(fields[2...].joined(separator: ":"))\" after the weight"
            )
        }
        guard let port = Int(fields[0]), (1...65_535).contains(port) else {
            if fields[0].isEmpty {
                throw ShardSpecError(code: .missingPort, text: entry, message: "empty port; write HOST:PORT[:WEIGHT]")
            }
            throw ShardSpecError(
                code: .invalidPort,
                text: entry,
                message: "port \"\(fields[0])\" is not a number from 1 to 65535"
            )
        }
        var weight = 1
        if fields.count == 2 {
            guard let value = Int(fields[1]), Self.weightRange.contains(value) else {
                throw ShardSpecError(
                    code: .invalidWeight,
                    text: entry,
                    message: "weight \"\(fields[1])\" is not a whole number from \(Self.weightRange.lowerBound) "
                        + "to \(Self.weightRange.upperBound)"
                )
            }
            weight = value
        }
        self.init(host: String(host), port: port, weight: weight)
    }

    /// Parses a comma-separated `--shards` list (`a:11211,b:11211:2`). The list must name at least one shard and no
    /// `HOST:PORT` twice (hosts compare case-insensitively).
    public static func parseList(_ text: some StringProtocol) throws(ShardSpecError) -> [ShardSpec] {
        let list = trimmed(text)
        guard !list.isEmpty else {
            throw ShardSpecError(code: .emptyList, text: list, message: "no shards; write HOST:PORT[:WEIGHT],…")
        }
        var shards: [ShardSpec] = []
        var seen: [String: Substring] = [:]
        for entry in list.split(separator: ",", omittingEmptySubsequences: false) {
            guard !trimmed(entry).isEmpty else {
                throw ShardSpecError(code: .emptyEntry, text: list, message: "empty entry between commas")
            }
            let shard = try ShardSpec(parsing: entry)
            let identity = shard.address.lowercased()
            if let earlier = seen[identity] {
                throw ShardSpecError(
                    code: .duplicateShard,
                    text: trimmed(entry),
                    message: "\(shard.address) is listed twice (also as \"\(trimmed(earlier))\"); "
                        + "each shard may appear once"
                )
            }
            seen[identity] = entry
            shards.append(shard)
        }
        return shards
    }

    /// `HOST:PORT`, with an IPv6 host in brackets.
    public var address: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The text twemproxy hashes for this server's points on a ketama continuum when no name is configured:
    /// `HOST:PORT`, or just `HOST` when the port is 11211 (kept by twemproxy for compatibility with libmemcached).
    public var ketamaName: String {
        port == 11_211 ? host : address
    }

    /// The spec as it parses back: `HOST:PORT`, plus `:WEIGHT` when the weight is not 1.
    public var description: String {
        weight == 1 ? address : "\(address):\(weight)"
    }

    private static func trimmed(_ text: some StringProtocol) -> String {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = text.firstIndex(where: { !isBlank($0) }), let last = text.lastIndex(where: { !isBlank($0) })
        else { return "" }
        return String(text[first...last])
    }
}
